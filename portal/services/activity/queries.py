"""The event log as people and machines read it, scoped to what the reader may see."""

from __future__ import annotations

import sqlalchemy as sa

from portal.events import EVENT_TYPES
from portal.models import Event, User
from portal.services.accounts.access import is_admin
from portal.services.errors import ValidationFailed
from portal.services.paging import Page, paginate


def list_events(
    *,
    actor: User,
    page: int,
    per_page: int,
    type_: str | None = None,
    company: str | None = None,
    module: str | None = None,
    after_id: int | str | None = None,
) -> Page:
    """Newest first. Admins see all; others only events of their own company."""
    query = sa.select(Event).order_by(Event.id.desc())
    if not is_admin(actor):
        query = query.where(Event.company == (actor.company.slug if actor.company else ""))
    errors = []
    if type_:
        if type_ not in EVENT_TYPES:
            errors.append(
                {"pointer": "/type", "message": f"must be one of {', '.join(EVENT_TYPES)}"}
            )
        query = query.where(Event.type == type_)
    if company:
        query = query.where(Event.company == company)
    if module:
        query = query.where(Event.module == module)
    if after_id not in (None, ""):
        if not str(after_id).isdigit():
            errors.append({"pointer": "/after_id", "message": "must be a non-negative integer"})
        else:
            query = query.where(Event.id > int(after_id))
    if errors:
        raise ValidationFailed("Invalid filter.", errors=errors)
    return paginate(query, page, per_page)
