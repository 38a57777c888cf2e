"""The per-name "latest" flag: the newest approved release, stable preferred over
pre-releases (api.md's latest=true), kept current inside each status-changing transaction."""

from __future__ import annotations

import sqlalchemy as sa

from portal.extensions import db
from portal.models import ModuleRelease, ReleaseStatus


def refresh_latest(name: str) -> None:
    """Recompute the flag for one name; call inside the unit of work that changed it."""
    best = db.session.execute(
        sa.select(ModuleRelease.id)
        .where(ModuleRelease.name == name, ModuleRelease.status == ReleaseStatus.APPROVED)
        .order_by(ModuleRelease.prerelease, ModuleRelease.version_key.desc())
        .limit(1)
    ).scalar()
    db.session.execute(
        sa.update(ModuleRelease)
        .where(ModuleRelease.name == name, ModuleRelease.is_latest != (ModuleRelease.id == best))
        .values(is_latest=ModuleRelease.id == best)
        .execution_options(synchronize_session=False)
    )
