"""Event relay throughput: outbox rows delivered to a real Redis stream, versus raw XADD.

Records N events (default 50,000) in a fresh database, then alternates, REPEATS times:

- relay: `Relay(...).drain()` publishes every unpublished row to a fresh stream key
  (one lease renewal, one SELECT, one pipelined XADD batch and one UPDATE per batch);
- raw:   redis-py pipelined XADD of the very same stream entries (prebuilt with
  `portal.events.stream_fields`, so only the Redis cost is timed), in batches of the
  same size and with the same approximate MAXLEN.

Reports events/s (best and median) and relay/raw as a ratio. Target: at least 60%.

    .venv/bin/python bench/relay.py [--events 50000] [--batch 500]
        [--database-url URL | sqlite] [--redis-url redis://127.0.0.1:6379/0] [--profile]

A PostgreSQL URL names the server: a fresh database is created there and dropped at the
end. `sqlite` uses a temporary SQLite file. Stream keys are `bench-<uuid>:events` and
are deleted at the end, even on failure.
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

from portal import create_app  # noqa: E402
from portal.config import TestConfig  # noqa: E402
from portal.events import MODULE_REGISTERED, RELAY_LEASE, Relay, stream_fields  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import Event  # noqa: E402
from portal.services.leases import release_lease  # noqa: E402

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
MAXLEN = 1_000_000
REPEATS = 3
TARGET = 0.60
INSERT_CHUNK = 5_000
OUT = Path(__file__).resolve().parent / "out" / "relay.json"


# --- database -------------------------------------------------------------------------


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
    parts = urlsplit(spec.replace("postgresql+psycopg://", "postgresql://"))
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    name = f"bench_relay_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    stack.callback(drop)
    return urlunsplit(parts._replace(path=f"/{name}")), "postgresql"


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


# --- timed phases ---------------------------------------------------------------------


def run_relay(client, key: str, batch: int, expected: int, profile: bool = False) -> float:
    relay = Relay(client, stream=key, maxlen=MAXLEN, batch_size=batch)
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    published = relay.drain()
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    release_lease(RELAY_LEASE, relay.holder)  # so the next repetition's relay takes over
    db.session.remove()
    if published != expected:
        raise AssertionError(f"relay published {published}, expected {expected}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(15)
        print(out.getvalue())
    return elapsed


def run_raw(client, key: str, batch: int, fields: list[dict[str, str]]) -> float:
    started = time.perf_counter()
    for start in range(0, len(fields), batch):
        pipe = client.pipeline(transaction=False)
        for entry in fields[start : start + batch]:
            pipe.xadd(key, entry, maxlen=MAXLEN, approximate=True)
        pipe.execute()
    return time.perf_counter() - started


# --- report ---------------------------------------------------------------------------


def summarize(times: list[float], events: int) -> dict:
    return {
        "seconds": [round(t, 4) for t in times],
        "best_s": round(min(times), 4),
        "median_s": round(statistics.median(times), 4),
        "best_eps": round(events / min(times)),
        "median_eps": round(events / statistics.median(times)),
    }


def print_summary(result: dict) -> None:
    relay, raw, ratio = result["relay"], result["raw"], result["ratio"]
    n = result["events"]
    print()
    print(f"Relay benchmark: {n:,} events, batch {result['batch']}, {result['database']},")
    print(f"  Redis {result['redis_version']}, {result['cpus']} CPUs, {result['date']}")
    print(f"  insert (untimed phase): {result['insert_s']:.2f} s")
    print()
    print(f"  {'':<10}{'best ev/s':>12}{'median ev/s':>14}   runs (s)")
    for name, row in (("relay", relay), ("raw XADD", raw)):
        runs = ", ".join(f"{t:.3f}" for t in row["seconds"])
        print(f"  {name:<10}{row['best_eps']:>12,}{row['median_eps']:>14,}   {runs}")
    print(f"  {'ratio':<10}{ratio['best']:>12.1%}{ratio['median']:>14.1%}")
    verdict = "PASS" if ratio["median"] >= TARGET else "FAIL"
    print(f"\n  target relay/raw >= {TARGET:.0%} (median): {verdict}")


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
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    client = redis.Redis.from_url(args.redis_url, socket_timeout=10, socket_connect_timeout=2)
    client.ping()
    keys: list[str] = []
    with ExitStack() as stack:
        stack.callback(lambda: keys and client.delete(*keys))
        url, backend = fresh_database(args.database_url, stack)
        app = create_app(TestConfig(url))
        with app.app_context(), _disposing_engine():
            flask_migrate.upgrade()
            db.session.remove()
            insert_s = insert_events(args.events)
            fields = load_fields()

            relay_times, raw_times = [], []
            for rep in range(args.repeats):
                if rep:
                    reset_published()
                vacuum_analyze()
                key = new_key(keys)
                relay_times.append(run_relay(client, key, args.batch, args.events))
                if unpublished_count():
                    raise AssertionError("rows left unpublished after drain()")
                check_stream(client, key, fields)
                client.delete(key)

                key = new_key(keys)
                raw_times.append(run_raw(client, key, args.batch, fields))
                check_stream(client, key, fields)
                client.delete(key)
                print(
                    f"  rep {rep + 1}: relay {relay_times[-1]:.3f} s, raw {raw_times[-1]:.3f} s",
                    flush=True,
                )

            if args.profile:
                reset_published()
                vacuum_analyze()
                print("\ncProfile of one relay drain (top 15 by cumulative time):")
                run_relay(client, new_key(keys), args.batch, args.events, profile=True)

        relay, raw = summarize(relay_times, args.events), summarize(raw_times, args.events)
        result = {
            "benchmark": "relay",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": backend,
            "events": args.events,
            "batch": args.batch,
            "maxlen": MAXLEN,
            "repeats": args.repeats,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "redis_version": client.info("server")["redis_version"],
            "redis_py": redis.__version__,
            "sqlalchemy": sa.__version__,
            "insert_s": round(insert_s, 3),
            "relay": relay,
            "raw": raw,
            "ratio": {
                "best": round(relay["best_eps"] / raw["best_eps"], 4),
                "median": round(relay["median_eps"] / raw["median_eps"], 4),
            },
            "target": TARGET,
        }
    print_summary(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # One entry per database, so the PostgreSQL and SQLite runs are kept side by side.
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results[backend] = result
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"  written to {args.out} ({backend})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
