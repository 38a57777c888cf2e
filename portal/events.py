"""Lifecycle events: the outbox row written with each change, and the relay to Redis Streams."""

from __future__ import annotations

import logging
import uuid

from portal.extensions import db
from portal.models import Event, User
from portal.models.base import utcnow

log = logging.getLogger(__name__)

MODULE_REGISTERED = "module.registered"
MODULE_UPDATED = "module.updated"
MODULE_APPROVED = "module.approved"
MODULE_REJECTED = "module.rejected"
MODULE_DEPRECATED = "module.deprecated"
MODULE_DELETED = "module.deleted"
INSTALLATION_CREATED = "installation.created"
INSTALLATION_UPDATED = "installation.updated"
INSTALLATION_ROLLED_BACK = "installation.rolled_back"
INSTALLATION_UNINSTALLED = "installation.uninstalled"
INSTALLATION_HEALTH_CHANGED = "installation.health_changed"

EVENT_TYPES = (
    MODULE_REGISTERED,
    MODULE_UPDATED,
    MODULE_APPROVED,
    MODULE_REJECTED,
    MODULE_DEPRECATED,
    MODULE_DELETED,
    INSTALLATION_CREATED,
    INSTALLATION_UPDATED,
    INSTALLATION_ROLLED_BACK,
    INSTALLATION_UNINSTALLED,
    INSTALLATION_HEALTH_CHANGED,
)


def record_event(
    type_: str,
    *,
    actor: User | str | None,
    company: str = "",
    module=None,
    installation_id: int | None = None,
    data: dict | None = None,
) -> Event:
    """Add an outbox row to the current session; the caller's unit of work commits it."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    actor_name = actor.email if isinstance(actor, User) else (actor or "system")
    event = Event(
        event_id=str(uuid.uuid4()),
        type=type_,
        occurred_at=utcnow(),
        actor=actor_name,
        company=company or "",
        module=module.name if module is not None else "",
        version=module.version if module is not None else "",
        module_id=module.id if module is not None else None,
        installation_id=installation_id,
        data=data or {},
    )
    db.session.add(event)
    return event
