"""Installation health, recorded: the one place that stores a new health status (from an
active check, a heartbeat or silence), its history and event, and the read behind the
badges pages poll. (Probing endpoints is probes.py; the registry's own /health is
services/platform/service_health.py.)"""

from __future__ import annotations

import sqlalchemy as sa

from portal import events
from portal.extensions import db
from portal.models import HealthChange, Installation, InstallationStatus, User
from portal.models.base import utcnow
from portal.services.accounts.access import is_admin, visible_company


def record_health(
    inst: Installation,
    status: str,
    message: str | None,
    latency_ms: int | None,
    source: str,
    *,
    actor: User | None = None,
) -> bool:
    """Set the installation's health inside the caller's unit of work; a change of status
    adds a history row and an `installation.health_changed` event. Returns True on change."""
    previous = inst.health_status
    inst.health_status = status
    inst.health_message = message
    inst.health_latency_ms = latency_ms
    inst.health_checked_at = utcnow()
    if previous == status:
        return False
    db.session.add(
        HealthChange(
            installation_id=inst.id,
            from_status=previous,
            to_status=status,
            source=source,
            message=message,
            latency_ms=latency_ms,
        )
    )
    events.record_event(
        events.INSTALLATION_HEALTH_CHANGED,
        actor=actor,
        company=inst.company.slug,
        module=inst.release,
        installation_id=inst.id,
        data={"from": previous, "to": status, "source": source, "message": message},
    )
    return True


def health_badges(company_slug: str, *, actor: User) -> list:
    """The health of a company's installed modules as (id, health_status, health_message,
    health_checked_at) rows, by id: one query for a company admin's own company (its id is
    the actor's), two otherwise. Raises NotFound (a company the actor may not see)."""
    company = actor.company
    if is_admin(actor) or company is None or company.slug != company_slug:
        company = visible_company(actor, company_slug)
    return db.session.execute(
        sa.select(
            Installation.id,
            Installation.health_status,
            Installation.health_message,
            Installation.health_checked_at,
        )
        .where(
            Installation.company_id == company.id,
            Installation.status == InstallationStatus.INSTALLED,
        )
        .order_by(Installation.id)
    ).all()
