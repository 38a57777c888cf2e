"""The relay: publishes outbox rows to a Redis stream, in id order, under a lease."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from portal.extensions import db
from portal.models import Event
from portal.models.base import utcnow
from portal.services.platform.leases import acquire_lease, release_lease
from portal.worker.loop import holder_id, run_until_stopped

log = logging.getLogger(__name__)


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
        self.holder = holder or holder_id()
        self._renew_at = 0.0

    def publish_batch(self) -> int:
        """Publish one batch and mark it published, if this relay holds the lease; returns
        how many were published."""
        ids = self._publish_next(())
        if ids:
            _mark_published(db.session.connection(), ids)
            db.session.commit()
        return len(ids)

    def _publish_next(self, in_flight: tuple[int, ...]) -> list[int]:
        """XADD the lowest unpublished rows, leaving out those whose mark is `in_flight`;
        returns their ids ([] without the lease or without rows). Ends its read."""
        if not self._hold_lease():
            return []
        if db.session.get_bind().dialect.name == "postgresql":
            entries = _stream_entries_postgres(self.batch_size, in_flight)
        else:
            entries = _stream_entries(self.batch_size)
        if not entries:
            db.session.rollback()
            return []
        pipe = self.redis.pipeline(transaction=False)
        for _id, fields in entries:
            pipe.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
        try:
            pipe.execute()
        finally:
            db.session.rollback()
        return [event_id for event_id, _fields in entries]

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
        """Publish until nothing is left; returns the total. On PostgreSQL each batch is
        marked on a second connection while the next one is read and sent (see _Marker);
        every mark has committed when this returns."""
        if db.session.get_bind().dialect.name != "postgresql":
            total = 0
            while count := self.publish_batch():
                total += count
            return total
        total = 0
        with _Marker(db.engine) as marker:
            while ids := self._publish_next(marker.in_flight):
                marker.submit(ids)
                total += len(ids)
        return total

    def run(self, stop: threading.Event, *, idle_seconds: float = 0.5) -> None:
        """Publish until `stop` is set; back off (up to 30 s) while Redis or the DB fails."""

        def drain_once() -> None:
            try:
                self.drain()
            except Exception:
                db.session.rollback()
                raise
            finally:
                db.session.remove()

        run_until_stopped(
            stop, drain_once, idle_seconds, 30.0, name="event relay", first_backoff=0.5
        )
        try:
            release_lease(RELAY_LEASE, self.holder)
        finally:
            db.session.remove()


def _stream_entries(limit: int) -> list[tuple[int, dict[str, str]]]:
    """(id, stream fields) of the lowest unpublished rows. Plain rows, not ORM objects:
    building 500 entities per batch cost more than XADD."""
    rows = db.session.execute(
        sa.select(*_STREAM_COLUMNS)
        .where(Event.published_at.is_(None))
        .order_by(Event.id)
        .limit(limit)
    ).all()
    return [(row.id, stream_fields(row)) for row in rows]


_STREAM_KEYS = (
    "event_id",
    "type",
    "occurred_at",
    "actor",
    "company",
    "module",
    "version",
    "module_id",
    "installation_id",
    "data",
)
# The same fields as stream_fields(), as text from PostgreSQL itself (occurred_at as
# datetime.isoformat() writes it: microseconds only when there are some): converting
# timestamps and building each entry in Python was a large share of a batch's time
# (bench/README.md, "Event relay").
_POSTGRES_BATCH = """
SELECT id, event_id, type,
       to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
         || CASE WHEN date_part('microseconds', occurred_at)::bigint %% 1000000 = 0 THEN ''
                 ELSE to_char(occurred_at AT TIME ZONE 'UTC', '.US') END
         || 'Z',
       actor, coalesce(company, ''), coalesce(module, ''), coalesce(version, ''),
       coalesce(module_id::text, ''), coalesce(installation_id::text, ''),
       coalesce(data::text, '{}')
FROM events
WHERE published_at IS NULL AND NOT (id = ANY(%(in_flight)s))
ORDER BY id
LIMIT %(limit)s
"""


def _stream_entries_postgres(limit: int, in_flight) -> list[tuple[int, dict[str, str]]]:
    """_stream_entries on PostgreSQL, leaving out the rows whose mark is in flight."""
    rows = (
        db.session.connection()
        .exec_driver_sql(_POSTGRES_BATCH, {"in_flight": list(in_flight), "limit": limit})
        .fetchall()
    )
    keys = _STREAM_KEYS
    return [(row[0], dict(zip(keys, row[1:], strict=True))) for row in rows]


def _in_ids(ids) -> sa.ColumnElement:
    """`id = ANY(:ids)`: one array parameter on PostgreSQL, not an IN list of a batch's
    parameters to render, bind and parse each time (the cheaper of the two to mark)."""
    return Event.id == sa.any_(sa.bindparam("ids", list(ids), type_=postgresql.ARRAY(sa.Integer)))


def _mark_published(conn: sa.Connection, ids: list[int]) -> None:
    """Mark a published batch in `conn`'s transaction (the caller commits). One UPDATE for
    the batch, not one per row (far slower). Its commit need not wait for the disk:
    were a mark lost in a crash, the batch is published again, and consumers deduplicate
    by event_id (at least once)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        in_batch = _in_ids(ids)
    else:
        in_batch = Event.id.in_(ids)
    conn.execute(sa.update(Event).where(in_batch).values(published_at=utcnow()))


class _Marker:
    """Marks published batches on its own connection, in a thread, while the relay reads
    and sends the next batch (PostgreSQL: the UPDATE is a real share of a batch's time,
    and the database runs it on the other core).

    The next batch's read leaves out the batch being marked (`in_flight`), so nothing is
    sent twice. submit() first waits for the previous mark, so at most one batch is
    unmarked at a time; a failed mark is raised there (or when the block ends), and its
    batch, still unpublished in the table, is sent again later: after the batch that
    followed it, but consumers deduplicate by event_id and its first delivery kept the
    order."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.in_flight: tuple[int, ...] = ()
        self._pending = None
        self._pool = None

    def __enter__(self) -> _Marker:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(1, thread_name_prefix="relay-mark")
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown()

    def submit(self, ids: list[int]) -> None:
        self.wait()
        self.in_flight = tuple(ids)
        self._pending = self._pool.submit(self._mark, ids)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        try:
            if pending is not None:
                pending.result()
        finally:
            self.in_flight = ()

    def _mark(self, ids: list[int]) -> None:
        with self.engine.begin() as conn:
            _mark_published(conn, ids)
