"""What installing a module again starts from: an uninstalled record keeps its last
configuration, and install_module reactivates that record with it (services.installations)."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from portal.extensions import db
from portal.models import Installation


def previous_configs(company_id: int, names: Iterable[str]) -> dict[str, dict]:
    """Module name → the last configuration the company had it installed with, for each of
    `names` it has uninstalled (one query; the caller has checked the company is the
    actor's). Raises nothing."""
    rows = db.session.execute(
        sa.select(Installation.module_name, Installation.config).where(
            Installation.company_id == company_id,
            Installation.status == "uninstalled",
            Installation.module_name.in_(list(names)),
        )
    ).all()
    return {name: config for name, config in rows if isinstance(config, dict)}
