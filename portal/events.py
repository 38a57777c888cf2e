"""Lifecycle events: the outbox row written with each change, and the relay to Redis Streams."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from portal.extensions import db
from portal.models import Event, User
from portal.models.base import utcnow
from portal.services.leases import acquire_lease, release_lease

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


def stream_fields(event) -> dict[str, str]:
    """The stream entry of events.md: every field a string, `data` as JSON."""
    occurred = event.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {
        "event_id": event.event_id,
        "type": event.type,
        "occurred_at": occurred,
        "actor": event.actor,
        "company": event.company or "",
        "module": event.module or "",
        "version": event.version or "",
        "module_id": "" if event.module_id is None else str(event.module_id),
        "installation_id": "" if event.installation_id is None else str(event.installation_id),
        "data": _data_json(event),
    }


def _data_json(event) -> str:
    # The relay selects the column as JSON text already (no parse and dump per event).
    text = getattr(event, "data_json", None)
    if text is not None:
        return text
    return json.dumps(event.data or {})


RELAY_LEASE = "event-relay"
_STREAM_COLUMNS = (
    Event.id,
    Event.event_id,
    Event.type,
    Event.occurred_at,
    Event.actor,
    Event.company,
    Event.module,
    Event.version,
    Event.module_id,
    Event.installation_id,
    sa.cast(Event.data, sa.Text).label("data_json"),
)


class Relay:
    """Publishes unpublished outbox rows to a Redis stream, oldest first, a batch at a time.

    It always asks for the lowest unpublished ids rather than keeping a cursor, so a row
    whose transaction committed late is still found (events.md). Only the lease holder
    publishes; other relays stand by and take over once the lease expires.
    """

    def __init__(
        self,
        redis_client,
        *,
        stream: str,
        maxlen: int,
        batch_size: int = 500,
        lease_seconds: int = 15,
        holder: str | None = None,
    ):
        self.redis = redis_client
        self.stream = stream
        self.maxlen = maxlen
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renew_at = 0.0

    def publish_batch(self) -> int:
        """Publish one batch if this relay holds the lease; returns how many were published."""
        if not self._hold_lease():
            return 0
        # Plain rows, not ORM objects: building 500 entities per batch cost more than XADD.
        events = db.session.execute(
            sa.select(*_STREAM_COLUMNS)
            .where(Event.published_at.is_(None))
            .order_by(Event.id)
            .limit(self.batch_size)
        ).all()
        if not events:
            db.session.rollback()
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for event in events:
            pipe.xadd(self.stream, stream_fields(event), maxlen=self.maxlen, approximate=True)
        try:
            pipe.execute()
        except Exception:
            db.session.rollback()
            raise
        # One UPDATE for the batch: marking rows one by one halves the throughput. Its
        # commit need not wait for the disk: were the mark lost in a crash, the batch is
        # published again, and consumers deduplicate by event_id (at least once).
        ids = [e.id for e in events]
        if db.session.get_bind().dialect.name == "postgresql":
            db.session.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
            # One array parameter, not an IN list of batch_size parameters to render,
            # bind and parse on every batch (halves the marking's cost).
            in_batch = Event.id == sa.any_(
                sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.Integer))
            )
        else:
            in_batch = Event.id.in_(ids)
        db.session.execute(
            sa.update(Event)
            .where(in_batch)
            .values(published_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        return len(events)

    def _hold_lease(self) -> bool:
        """Renew the lease a third of its time after the last renewal, not every batch: the
        lease stays ours until it expires, so nobody can take it in between."""
        now = time.monotonic()
        if now < self._renew_at:
            return True
        if not acquire_lease(RELAY_LEASE, self.holder, self.lease_seconds):
            self._renew_at = 0.0
            return False
        self._renew_at = now + self.lease_seconds / 3
        return True

    def drain(self) -> int:
        """Publish until nothing is left; returns the total."""
        total = 0
        while count := self.publish_batch():
            total += count
        return total

    def run(self, stop: threading.Event, *, idle_seconds: float = 0.5) -> None:
        """Publish until `stop` is set; back off (up to 30 s) while Redis or the DB fails."""
        backoff = 0.5
        while not stop.is_set():
            try:
                published = self.publish_batch()
                backoff = 0.5
            except Exception as exc:  # Redis down or DB hiccup: retry later, never crash
                db.session.rollback()
                log.warning("event relay: %s; retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            finally:
                db.session.remove()
            if published < self.batch_size:
                stop.wait(idle_seconds)
        try:
            release_lease(RELAY_LEASE, self.holder)
        finally:
            db.session.remove()
