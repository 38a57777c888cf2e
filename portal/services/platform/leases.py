"""Leases in the database: one active relay or scheduler across processes."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import Lease
from portal.models.base import utcnow


def acquire_lease(name: str, holder: str, ttl_seconds: float) -> bool:
    """Take or renew the lease `name` for `holder`; False while someone else holds it.

    A conditional UPDATE (or the primary key on first INSERT) decides races on both
    databases, without relying on FOR UPDATE, which SQLite ignores.
    """
    now = utcnow()
    expires = now + timedelta(seconds=ttl_seconds)
    result = db.session.execute(
        sa.update(Lease)
        .where(Lease.name == name, sa.or_(Lease.holder == holder, Lease.expires_at < now))
        .values(holder=holder, expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        db.session.commit()
        return True
    exists = db.session.execute(sa.select(Lease.name).where(Lease.name == name)).first()
    if exists:
        db.session.commit()
        return False
    try:
        db.session.add(Lease(name=name, holder=holder, expires_at=expires))
        db.session.commit()
        return True
    except IntegrityError:
        db.session.rollback()
        return False


def release_lease(name: str, holder: str) -> None:
    """Give the lease up at a clean shutdown, so a standby takes over at once."""
    db.session.execute(
        sa.delete(Lease)
        .where(Lease.name == name, Lease.holder == holder)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
