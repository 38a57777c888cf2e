"""What installing a module again starts from: an uninstalled record keeps its last
configuration (and endpoint), and install_module reactivates that record with it; the
install page's forms start from the same configuration."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from portal.extensions import db
from portal.models import Installation, InstallationStatus


def previous_installations(company_id: int, names: Iterable[str]) -> dict[str, Installation]:
    """Module name → the company's uninstalled installation of it, for each of `names` it
    has uninstalled (one query; the caller has checked the company is the actor's). Raises
    nothing."""
    names = list(names)
    if not names:
        return {}
    rows = db.session.execute(
        sa.select(Installation).where(
            Installation.company_id == company_id,
            Installation.status == InstallationStatus.UNINSTALLED,
            Installation.module_name.in_(names),
        )
    ).scalars()
    return {inst.module_name: inst for inst in rows}


def previous_configs(company_id: int, names: Iterable[str]) -> dict[str, dict]:
    """Module name → the last configuration of each of `names` the company has uninstalled
    (previous_installations' configurations)."""
    found = previous_installations(company_id, names)
    return {name: inst.config for name, inst in found.items() if isinstance(inst.config, dict)}
