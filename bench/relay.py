"""Event relay throughput: outbox rows delivered to a real Redis stream, versus raw XADD.

Records N events (default 50,000) in a fresh database, then alternates, REPEATS times:

- relay: `Relay(...).drain()` publishes every unpublished row to a fresh stream key
  (a SELECT, one pipelined XADD batch and one UPDATE per batch, the lease renewed when
  due); afterwards `published_at` is reset and the table vacuumed, untimed;
- raw:   redis-py pipelined XADD of the very same stream entries (prebuilt with
  `portal.worker.relay.stream_fields`, so only the Redis cost is timed), in batches of the
  same size and with the same approximate MAXLEN.

Each stream is checked: every entry, in id order. Reports events/s (best and median),
relay/raw as a ratio (target: at least 60%), and CPU seconds of this process, the
PostgreSQL backends and redis-server, which other load on the machine disturbs less.

    .venv/bin/python bench/relay.py [--events 50000] [--batch 500]
        [--database-url URL | sqlite] [--redis-url redis://127.0.0.1:6379/0]
        [--repeats 3] [--profile] [--breakdown] [--variants] [--out PATH]

A PostgreSQL URL names the server: a fresh database is created there and dropped at the
end. `sqlite` uses a temporary SQLite file. Stream keys are `bench-<uuid>:events` and
are deleted at the end, even on failure. Results: bench/out/relay.json, one entry per
database. --variants also times ProposedRelay (proposed changes, portal/ untouched);
--breakdown times the steps of one more drain; see bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import flask_migrate  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlalchemy.dialects import postgresql as pg  # noqa: E402

from portal import create_app  # noqa: E402
from portal.config import TestConfig  # noqa: E402
from portal.events import MODULE_REGISTERED  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import Event  # noqa: E402
from portal.models.base import utcnow  # noqa: E402
from portal.services.platform.leases import acquire_lease, release_lease  # noqa: E402
from portal.worker.relay import RELAY_LEASE, Relay, stream_fields  # noqa: E402

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
MAXLEN = 1_000_000
REPEATS = 3
TARGET = 0.60
INSERT_CHUNK = 5_000
OUT = Path(__file__).resolve().parent / "out" / "relay.json"


# --- database -------------------------------------------------------------------------


from _common import fresh_postgres  # noqa: E402  (bench/ is on sys.path)


def fresh_database(spec: str, stack: ExitStack) -> tuple[str, str]:
    """A new, empty database for this run; returns (url, label). Dropped by `stack`."""
    if spec == "sqlite" or spec.startswith("sqlite:"):
        if spec in ("sqlite", "sqlite://", "sqlite:///:memory:"):
            tmp = tempfile.TemporaryDirectory(prefix="bench-relay-")
            stack.enter_context(tmp)
            path = Path(tmp.name) / "relay.db"
        else:
            path = Path(spec.removeprefix("sqlite:///"))
            if path.exists():
                raise SystemExit(f"{path} exists: the benchmark needs a file of its own")
            stack.callback(_unlink_sqlite, path)
        return f"sqlite:///{path}", "sqlite"
    return fresh_postgres(spec, stack, "bench_relay")


@contextmanager
def _disposing_engine():
    """Close the pool's connections (inside the app context) before the database is dropped."""
    try:
        yield
    finally:
        db.session.remove()
        db.engine.dispose()


def _unlink_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def insert_events(count: int) -> float:
    """Bulk-insert `count` unpublished events, as record_event would write them."""
    started = time.perf_counter()
    for start in range(0, count, INSERT_CHUNK):
        rows = [
            {
                "event_id": str(uuid.uuid4()),
                "type": MODULE_REGISTERED,
                "occurred_at": datetime.now(UTC),
                "actor": "bench@acme.test",
                "company": "acme",
                "module": "bench-mod",
                "version": "1.0.0",
                "module_id": None,
                "installation_id": None,
                "data": {"i": n},
            }
            for n in range(start, min(start + INSERT_CHUNK, count))
        ]
        db.session.execute(sa.insert(Event), rows)
    db.session.commit()
    return time.perf_counter() - started


def load_fields() -> list[dict[str, str]]:
    """The stream entries the relay must produce, in id order."""
    events = db.session.execute(sa.select(Event).order_by(Event.id)).scalars().all()
    fields = [stream_fields(e) for e in events]
    db.session.remove()
    return fields


def reset_published() -> None:
    db.session.execute(sa.update(Event).values(published_at=None))
    db.session.commit()
    db.session.remove()


def vacuum_analyze() -> None:
    """Fresh statistics and no dead rows, as autovacuum would leave them (untimed).

    Without it the first drain runs on a table PostgreSQL has never analyzed, and later
    repetitions on 50,000 dead row versions left by the reset, so repetitions would not
    measure the same thing.
    """
    sql = "VACUUM ANALYZE events" if db.engine.dialect.name == "postgresql" else "ANALYZE events"
    db.session.remove()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(sql)


def unpublished_count() -> int:
    count = db.session.execute(
        sa.select(sa.func.count()).select_from(Event).where(Event.published_at.is_(None))
    ).scalar_one()
    db.session.remove()
    return count


# --- redis ----------------------------------------------------------------------------


def new_key(keys: list[str]) -> str:
    key = f"bench-{uuid.uuid4()}:events"
    keys.append(key)
    return key


def check_stream(client: redis.Redis, key: str, expected: list[dict[str, str]]) -> None:
    """Every entry present, in id order: compare event_id and data of each entry."""
    length = client.xlen(key)
    if length != len(expected):
        raise AssertionError(f"{key}: {length} entries, expected {len(expected)}")
    position, last = 0, "-"
    while True:
        chunk = client.xrange(key, min=last, max="+", count=5_000)
        if last != "-":
            chunk = chunk[1:]  # XRANGE is inclusive: skip the entry seen last time
        if not chunk:
            break
        for _entry_id, entry in chunk:
            want = expected[position]
            got = (entry[b"event_id"].decode(), entry[b"data"].decode())
            if got != (want["event_id"], want["data"]):
                raise AssertionError(f"{key}: entry {position} is {got}, expected {want}")
            position += 1
        last = chunk[-1][0]
    if position != len(expected):
        raise AssertionError(f"{key}: read {position} entries, expected {len(expected)}")


# --- proposed relay changes (measured with --variants; portal/ is not edited here) ------

# The columns stream_fields reads: a Row has them as attributes, like an Event.
EVENT_COLUMNS = (
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
    Event.data,
)
# The same, with `data` as the database's JSON text (stream_fields takes `data_json` as is).
EVENT_COLUMNS_TEXT = (*EVENT_COLUMNS[:-1], sa.cast(Event.data, sa.Text).label("data_json"))


class ProposedRelay(Relay):
    """Relay.publish_batch with changes switched on by `options`, for measuring them.

    With no options it is the relay as it was before 9f56a0c: ORM entities, and the
    lease renewed (UPDATE + COMMIT) before every batch.

    rows:   SELECT the columns as rows instead of loading 500 ORM entities (in 9f56a0c).
    lease:  renew the lease only once a third of its TTL has passed, not before every
            batch (in 9f56a0c; one UPDATE and one COMMIT fewer per batch).
    text:   with rows, select `data` as JSON text (CAST AS TEXT), no parse and dump per
            event (in c6a1c88).
    async_commit: on PostgreSQL, commit the "published" marks with synchronous_commit
            off (in c6a1c88). A crash can lose only the last marks, and those events are
            then published again: at least once, which events.md already requires
            consumers to handle (they deduplicate by event_id).
    any_array: on PostgreSQL, mark the batch with `id = ANY(:ids)` (one array parameter)
            instead of `id IN (:id_1, ..., :id_500)` (500 parameters rendered, bound and
            planned on every batch).
    returning: mark and fetch in one statement, `UPDATE ... WHERE id IN (SELECT the
            lowest unpublished ids LIMIT n) RETURNING <columns>`, then XADD, then commit
            (a Redis failure rolls the marks back). No id list goes back to the database.
    """

    options: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._renewed_at: float | None = None

    def _hold_lease(self) -> bool:
        if "lease" not in self.options:
            return acquire_lease(RELAY_LEASE, self.holder, self.lease_seconds)
        now = time.monotonic()
        if self._renewed_at is not None and now - self._renewed_at < self.lease_seconds / 3:
            return True
        if acquire_lease(RELAY_LEASE, self.holder, self.lease_seconds):
            self._renewed_at = now
            return True
        self._renewed_at = None
        return False

    def _columns(self) -> tuple:
        return EVENT_COLUMNS_TEXT if "text" in self.options else EVENT_COLUMNS

    def publish_batch(self) -> int:
        if not self._hold_lease():
            return 0
        if "returning" in self.options:
            return self._publish_returning()
        what = self._columns() if "rows" in self.options else (Event,)
        query = (
            sa.select(*what)
            .where(Event.published_at.is_(None))
            .order_by(Event.id)
            .limit(self.batch_size)
        )
        result = db.session.execute(query)
        events = result.all() if "rows" in self.options else result.scalars().all()
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
        postgres = db.engine.dialect.name == "postgresql"
        if "async_commit" in self.options and postgres:
            db.session.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
        ids = [e.id for e in events]
        if "any_array" in self.options and postgres:
            batch = Event.id == sa.any_(sa.bindparam("ids", ids, type_=pg.ARRAY(sa.Integer)))
        else:
            batch = Event.id.in_(ids)
        db.session.execute(
            sa.update(Event)
            .where(batch)
            .values(published_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        return len(events)

    def _publish_returning(self) -> int:
        lowest = (
            sa.select(Event.id)
            .where(Event.published_at.is_(None))
            .order_by(Event.id)
            .limit(self.batch_size)
        )
        if "async_commit" in self.options and db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
        marked = db.session.execute(
            sa.update(Event)
            .where(Event.id.in_(lowest))
            .values(published_at=utcnow())
            .returning(*self._columns())
            .execution_options(synchronize_session=False)
        ).all()
        if not marked:
            db.session.rollback()
            return 0
        marked.sort(key=lambda row: row.id)  # RETURNING comes in no particular order
        pipe = self.redis.pipeline(transaction=False)
        for row in marked:
            pipe.xadd(self.stream, stream_fields(row), maxlen=self.maxlen, approximate=True)
        try:
            pipe.execute()
        except Exception:
            db.session.rollback()
            raise
        db.session.commit()
        return len(marked)


def proposed(*options: str) -> type[Relay]:
    return type("ProposedRelay", (ProposedRelay,), {"options": options})


# name -> relay class. "relay" is portal's Relay: since 9f56a0c it selects rows and renews
# the lease a third of its TTL apart, since c6a1c88 it also reads `data` as JSON text and
# commits the marks without waiting for the disk. "old" is the relay before 9f56a0c.
CURRENT = ("rows", "lease", "text", "async_commit")
VARIANTS: dict[str, type[Relay]] = {
    "old (orm, lease/batch)": proposed(),
    "control (= relay)": proposed(*CURRENT),  # the harness adds nothing if it matches
    "+any": proposed(*CURRENT, "any_array"),
    "+returning": proposed("returning", "lease", "text", "async_commit"),
}


# --- CPU accounting: this process, the database backends and redis-server ------------


def _proc_cpu(pid: int) -> float:
    """utime + stime of a local process, in seconds (0 if it is gone or not readable)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent by the three processes doing the work, whatever else runs.

    The relay is synchronous (it waits for PostgreSQL, then for Redis), so on an idle
    machine its wall time is close to the sum of these; on a busy one the sum still holds
    while wall times swing. Redis and PostgreSQL must be local for their share to count
    (redis-server's share includes any other client's commands in the meantime).
    """

    def __init__(self, client, database_url: str | None):
        self.redis_pid = None
        info = client.info("server")
        if os.path.exists(f"/proc/{info.get('process_id', 0)}/stat"):
            self.redis_pid = int(info["process_id"])
        self.admin = None
        if database_url and database_url.startswith("postgresql"):
            parts = urlsplit(database_url.replace("postgresql+psycopg://", "postgresql://"))
            self.database = parts.path.lstrip("/")
            admin_url = urlunsplit(parts._replace(path="/postgres"))
            self.admin = psycopg.connect(admin_url, autocommit=True)

    def close(self) -> None:
        if self.admin is not None:
            self.admin.close()

    def snapshot(self) -> dict:
        backends = {}
        if self.admin is not None:
            rows = self.admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
            ).fetchall()
            backends = {pid: _proc_cpu(pid) for (pid,) in rows}
        return {
            "python": time.process_time(),
            "postgres": backends,
            "redis": _proc_cpu(self.redis_pid) if self.redis_pid else 0.0,
        }

    def since(self, before: dict) -> dict[str, float]:
        now = self.snapshot()
        postgres = sum(
            cpu - before["postgres"].get(pid, 0.0) for pid, cpu in now["postgres"].items()
        )
        used = {
            "python": now["python"] - before["python"],
            "postgres": postgres,
            "redis": now["redis"] - before["redis"],
        }
        used["total"] = sum(used.values())
        return {k: round(v, 4) for k, v in used.items()}


class _NoMeter:
    def snapshot(self) -> dict:
        return {"python": time.process_time()}

    def since(self, before: dict) -> dict[str, float]:
        used = time.process_time() - before["python"]
        return {"python": used, "postgres": 0.0, "redis": 0.0, "total": used}


# --- timed phases ---------------------------------------------------------------------


def run_relay(
    client,
    key: str,
    batch: int,
    expected: int,
    relay_class=Relay,
    profile: bool = False,
    meter: CpuMeter | _NoMeter | None = None,
) -> tuple[float, dict[str, float]]:
    """One drain to `key`; returns (wall seconds, CPU seconds by process)."""
    meter = meter or _NoMeter()
    relay = relay_class(client, stream=key, maxlen=MAXLEN, batch_size=batch)
    profiler = cProfile.Profile() if profile else None
    cpu_before = meter.snapshot()
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    published = relay.drain()
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    cpu = meter.since(cpu_before)
    release_lease(RELAY_LEASE, relay.holder)  # so the next repetition's relay takes over
    db.session.remove()
    if published != expected:
        raise AssertionError(f"relay published {published}, expected {expected}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(15)
        print(out.getvalue())
    return elapsed, cpu


def run_raw(
    client, key: str, batch: int, fields: list[dict[str, str]], meter=None
) -> tuple[float, dict[str, float]]:
    """Returns (wall seconds, CPU seconds by process), like run_relay."""
    meter = meter or _NoMeter()
    cpu_before = meter.snapshot()
    started = time.perf_counter()
    for start in range(0, len(fields), batch):
        pipe = client.pipeline(transaction=False)
        for entry in fields[start : start + batch]:
            pipe.xadd(key, entry, maxlen=MAXLEN, approximate=True)
        pipe.execute()
    elapsed = time.perf_counter() - started
    return elapsed, meter.since(cpu_before)


# --- breakdown (--breakdown): where one drain's time goes, without editing the relay ------

STEPS = ("lease", "select", "rows", "stream_fields", "redis", "update", "commit", "other sql")


class _TimedPipeline:
    def __init__(self, pipe, totals: dict[str, float]):
        self._pipe, self._totals = pipe, totals

    def xadd(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self._pipe.xadd(*args, **kwargs)
        finally:
            self._totals["redis"] += time.perf_counter() - started

    def execute(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self._pipe.execute(*args, **kwargs)
        finally:
            self._totals["redis"] += time.perf_counter() - started


class _TimedRedis:
    def __init__(self, client, totals: dict[str, float]):
        self._client, self._totals = client, totals

    def pipeline(self, *args, **kwargs):
        return _TimedPipeline(self._client.pipeline(*args, **kwargs), self._totals)


def _statement_kind(statement: str) -> str:
    sql = statement.lstrip().lower()
    if "leases" in sql:
        return "lease"
    if sql.startswith("select") and "from events" in sql:
        return "select"
    if sql.startswith("update events"):
        return "update"
    return "other sql"


def run_breakdown(client, key: str, batch: int, expected: int, relay_class) -> dict:
    """One drain with timers around SQL execution (by statement), commits, stream_fields
    and the Redis pipeline. "rows" is the rest: fetching and building the result rows or
    ORM objects, plus the session's own work. The timers add a little overhead."""
    import portal.worker.relay

    totals: dict[str, float] = dict.fromkeys(STEPS, 0.0)
    # On PostgreSQL the relay marks each batch in a thread while the next is sent: that
    # time runs beside the steps above, so it is reported apart, not in the sum.
    background = {"update": 0.0}
    timing_thread = threading.get_ident()
    last_kind = ["other sql"]

    def before(conn, _cursor, _statement, _params, _context, _many):
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def after(conn, _cursor, statement, _params, _context, _many):
        kind = _statement_kind(statement)
        took = time.perf_counter() - conn.info["bench_started"].pop()
        if threading.get_ident() != timing_thread:
            background["update"] += took
            return
        totals[kind] += took
        last_kind[0] = kind

    real_fields = portal.worker.relay.stream_fields

    def timed_fields(event):
        started = time.perf_counter()
        try:
            return real_fields(event)
        finally:
            totals["stream_fields"] += time.perf_counter() - started

    session = db.session()
    real_commit = session.commit

    def timed_commit():
        started = time.perf_counter()
        try:
            return real_commit()
        finally:
            kind = "lease" if last_kind[0] == "lease" else "commit"
            totals[kind] += time.perf_counter() - started

    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    session.commit = timed_commit
    patched = [portal.events, sys.modules[__name__]]
    for module in patched:
        module.stream_fields = timed_fields
    try:
        relay = relay_class(
            _TimedRedis(client, totals), stream=key, maxlen=MAXLEN, batch_size=batch
        )
        started = time.perf_counter()
        published = relay.drain()
        elapsed = time.perf_counter() - started
    finally:
        for module in patched:
            module.stream_fields = real_fields
        sa.event.remove(engine, "before_cursor_execute", before)
        sa.event.remove(engine, "after_cursor_execute", after)
        db.session.remove()
    release_lease(RELAY_LEASE, relay.holder)
    db.session.remove()
    if published != expected:
        raise AssertionError(f"relay published {published}, expected {expected}")
    totals["rows"] = elapsed - sum(v for k, v in totals.items() if k != "rows")
    batches = -(-expected // batch)
    return {
        "total_s": round(elapsed, 4),
        "per_batch_ms": {k: round(v * 1000 / batches, 2) for k, v in totals.items()},
        "background_update_ms": round(background["update"] * 1000 / batches, 2),
    }


def print_breakdown(name: str, result: dict, raw_per_batch_ms: float) -> None:
    steps = result["per_batch_ms"]
    total = sum(steps.values())
    print(f"\n  where {name}'s time goes, ms per batch (raw XADD: {raw_per_batch_ms:.1f} ms):")
    for step, ms in steps.items():
        print(f"    {step:<14}{ms:>8.2f}  {ms / total:>6.1%}")
    print(f"    {'total':<14}{total:>8.2f}")
    if result.get("background_update_ms"):
        print(
            f"    (beside these, in the marking thread: update "
            f"{result['background_update_ms']:.2f} ms per batch)"
        )


# --- report ---------------------------------------------------------------------------


def summarize(runs: list[tuple[float, dict[str, float]]], events: int) -> dict:
    times = [wall for wall, _cpu in runs]
    cpu = {
        part: round(statistics.median(used[part] for _wall, used in runs), 4)
        for part in ("python", "postgres", "redis", "total")
    }
    return {
        "seconds": [round(t, 4) for t in times],
        "best_s": round(min(times), 4),
        "median_s": round(statistics.median(times), 4),
        "best_eps": round(events / min(times)),
        "median_eps": round(events / statistics.median(times)),
        "cpu_seconds": [used for _wall, used in runs],
        "cpu_median_s": cpu,
    }


def ratio(row: dict, raw: dict) -> dict:
    return {
        "best": round(row["best_eps"] / raw["best_eps"], 4),
        "median": round(row["median_eps"] / raw["median_eps"], 4),
        # The same ratio from CPU seconds of Python + PostgreSQL + Redis (medians).
        "cpu": round(raw["cpu_median_s"]["total"] / row["cpu_median_s"]["total"], 4),
    }


def print_summary(result: dict) -> None:
    raw, n = result["raw"], result["events"]
    print()
    print(f"Relay benchmark: {n:,} events, batch {result['batch']}, {result['database']},")
    load = " -> ".join(f"{x:.1f}" for x in result["loadavg_1m"])
    cpus, date = result["cpus"], result["date"]
    print(f"  Redis {result['redis_version']}, {cpus} CPUs, load {load}, {date}")
    print(f"  insert (untimed phase): {result['insert_s']:.2f} s")
    print()
    print(
        f"  {'':<30}{'best ev/s':>10}{'median ev/s':>12}{'ratio best':>11}{'median':>7}"
        f"{'CPU':>6}   {'CPU s: py':>9}{'pg':>6}{'redis':>6}   runs (s)"
    )
    rows = [("relay", result["relay"], result["ratio"]), ("raw XADD", raw, None)]
    rows += [(f"relay {name}", row, row["ratio"]) for name, row in result["variants"].items()]
    for name, row, rat in rows:
        runs = ", ".join(f"{t:.2f}" for t in row["seconds"])
        ratios = f"{rat['best']:>11.1%}{rat['median']:>7.1%}{rat['cpu']:>6.0%}" if rat else " " * 24
        cpu = row["cpu_median_s"]
        print(
            f"  {name:<30}{row['best_eps']:>10,}{row['median_eps']:>12,}{ratios}"
            f"   {cpu['python']:>9.2f}{cpu['postgres']:>6.2f}{cpu['redis']:>6.2f}   {runs}"
        )
    print(
        "  ratio: relay ev/s / raw ev/s, from the best and the median runs; CPU: the same\n"
        "  from the CPU seconds of Python + PostgreSQL + redis-server (medians), which load\n"
        "  from other work on the machine disturbs much less than wall time."
    )
    verdict = "PASS" if result["ratio"]["median"] >= TARGET else "FAIL"
    print(f"\n  target: relay/raw >= {TARGET:.0%} (median-based): {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--database-url",
        default=DEFAULT_SERVER,
        help="PostgreSQL server (a fresh database is created on it), or 'sqlite'",
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one extra relay drain (top 15)"
    )
    parser.add_argument(
        "--variants",
        action="store_true",
        help="also time the proposed relay changes (ProposedRelay), each repetition",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="time the steps of one extra drain (and of +any with --variants)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    load_start = os.getloadavg()
    client = redis.Redis.from_url(args.redis_url, socket_timeout=10, socket_connect_timeout=2)
    client.ping()
    keys: list[str] = []
    with ExitStack() as stack:
        stack.callback(lambda: keys and client.delete(*keys))
        url, backend = fresh_database(args.database_url, stack)
        meter = CpuMeter(client, url)
        stack.callback(meter.close)
        app = create_app(TestConfig(url))
        with app.app_context(), _disposing_engine():
            flask_migrate.upgrade()
            db.session.remove()
            insert_s = insert_events(args.events)
            fields = load_fields()

            contenders = {"relay": Relay}
            if args.variants:
                contenders.update(VARIANTS)
            times: dict[str, list[tuple[float, float]]] = {n: [] for n in [*contenders, "raw"]}
            published = False
            for rep in range(args.repeats):
                for name, relay_class in contenders.items():
                    if published:
                        reset_published()
                    vacuum_analyze()
                    key = new_key(keys)
                    run = run_relay(client, key, args.batch, args.events, relay_class, meter=meter)
                    times[name].append(run)
                    published = True
                    if unpublished_count():
                        raise AssertionError(f"{name}: rows left unpublished after drain()")
                    check_stream(client, key, fields)
                    client.delete(key)
                    if name == "relay":  # raw right after the relay: alternating pairs
                        key = new_key(keys)
                        times["raw"].append(run_raw(client, key, args.batch, fields, meter))
                        check_stream(client, key, fields)
                        client.delete(key)
                runs = ", ".join(f"{name} {t[-1][0]:.3f} s" for name, t in times.items())
                print(f"  rep {rep + 1}: {runs}", flush=True)

            breakdowns = {}
            if args.breakdown:
                for name in ("relay", *(["+any"] if args.variants else [])):
                    reset_published()
                    vacuum_analyze()
                    key = new_key(keys)
                    breakdowns[name] = run_breakdown(
                        client, key, args.batch, args.events, contenders[name]
                    )
                    check_stream(client, key, fields)
                    client.delete(key)

            if args.profile:
                reset_published()
                vacuum_analyze()
                print("\ncProfile of one relay drain (top 15 by cumulative time):")
                run_relay(client, new_key(keys), args.batch, args.events, profile=True)

        relay, raw = summarize(times["relay"], args.events), summarize(times["raw"], args.events)
        variants = {}
        for name in contenders:
            if name != "relay":
                variants[name] = summarize(times[name], args.events)
                variants[name]["ratio"] = ratio(variants[name], raw)
        result = {
            "benchmark": "relay",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": backend,
            "events": args.events,
            "batch": args.batch,
            "maxlen": MAXLEN,
            "repeats": args.repeats,
            "cpus": os.cpu_count(),
            # Other work on the machine skews wall times: the 1-minute load around the run.
            "loadavg_1m": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
            "python": platform.python_version(),
            "redis_version": client.info("server")["redis_version"],
            "redis_py": redis.__version__,
            "sqlalchemy": sa.__version__,
            "insert_s": round(insert_s, 3),
            "relay": relay,
            "raw": raw,
            "ratio": ratio(relay, raw),
            "target": TARGET,
            "variants": variants,
            "breakdown": breakdowns,
        }
    print_summary(result)
    raw_per_batch_ms = result["raw"]["median_s"] * 1000 / -(-args.events // args.batch)
    for name, row in result["breakdown"].items():
        print_breakdown(name, row, raw_per_batch_ms)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # One entry per database, so the PostgreSQL and SQLite runs are kept side by side.
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results[backend] = result
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"  written to {args.out} ({backend})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
