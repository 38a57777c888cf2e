"""Event relay: outbox rows delivered to a real Redis stream, against raw pipelined XADD.

What we measure: events per second of `Relay(...).drain()` publishing N unpublished
outbox rows (default 50,000) to a fresh stream key, and the CPU seconds of this process,
the PostgreSQL backends and redis-server (read from /proc; other load on the machine
disturbs them far less than wall time).
Against what: redis-py pipelined XADD of the very same stream entries (prebuilt with
`stream_fields`, so only the Redis cost is timed), in batches of the same size and the
same approximate MAXLEN, run right after each drain.
Target: relay events/s at least 60% of raw XADD's (median of the repetitions).

Every stream is checked (every entry, in id order). Between runs `published_at` is reset
and the table vacuumed (untimed), so every drain starts from the same table.

    python -m bench.relay [--events 50000] [--batch 500] [--repeats 3]
        [--database-url URL | sqlite] [--redis-url URL] [--profile] [--breakdown] [--quick]

Stream keys are `bench-<uuid>:events`, deleted at the end even on failure.
"""

from __future__ import annotations

import cProfile
import statistics
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime

import redis
import sqlalchemy as sa

from bench import harness
from portal.events import MODULE_REGISTERED
from portal.extensions import db
from portal.models import Event
from portal.services.platform.leases import release_lease
from portal.worker.relay import RELAY_LEASE, Relay, stream_fields

MAXLEN = 1_000_000
TARGET = 0.60
INSERT_CHUNK = 5_000
QUICK = {"events": 2_000, "repeats": 1}


# --- setup (untimed) -----------------------------------------------------------------------


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
    """Every row unpublished again, and the table as autovacuum would leave it: without
    the VACUUM ANALYZE the first drain runs on a never-analyzed table and later ones on
    dead row versions, so repetitions would not measure the same thing."""
    db.session.execute(sa.update(Event).values(published_at=None))
    db.session.commit()
    harness.vacuum_analyze("events")


def check_stream(client: redis.Redis, key: str, expected: list[dict[str, str]]) -> None:
    """Every entry present, in id order (event_id and data compared); then delete it."""
    if client.xlen(key) != len(expected):
        raise AssertionError(f"{key}: {client.xlen(key)} entries, expected {len(expected)}")
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
    client.delete(key)


# --- the two contenders --------------------------------------------------------------------


class Run:
    """One benchmark run's shared state: the Redis client, the keys made, the meter."""

    def __init__(self, client: redis.Redis, meter: harness.CpuMeter, args, fields: list):
        self.client, self.meter, self.args, self.fields = client, meter, args, fields
        self.keys: list[str] = []

    def new_key(self) -> str:
        self.keys.append(f"bench-{uuid.uuid4()}:events")
        return self.keys[-1]

    def relay(self):
        """One drain to a fresh key; returns (wall seconds, CPU seconds by process)."""
        reset_published()
        elapsed, cpu, key = self.drain(self.client)
        self.check(key)
        return elapsed, cpu

    def drain(self, client, profiler: cProfile.Profile | None = None):
        """Relay(...).drain() to a fresh key, timed; returns (wall s, CPU s, the key)."""
        key = self.new_key()
        relay = Relay(client, stream=key, maxlen=MAXLEN, batch_size=self.args.batch)
        before, started = self.meter.snapshot(), time.perf_counter()
        if profiler:
            profiler.enable()
        published = relay.drain()
        if profiler:
            profiler.disable()
        elapsed, cpu = time.perf_counter() - started, self.meter.since(before)
        release_lease(RELAY_LEASE, relay.holder)  # so the next relay takes over at once
        db.session.remove()
        if published != self.args.events:
            raise AssertionError(f"relay published {published}, expected {self.args.events}")
        return elapsed, cpu, key

    def check(self, key: str) -> None:
        """No row left unpublished, and the stream complete and in order."""
        left = db.session.scalar(sa.select(sa.func.count()).where(Event.published_at.is_(None)))
        if left:
            raise AssertionError(f"{left} rows left unpublished after drain()")
        check_stream(self.client, key, self.fields)

    def raw(self):
        """The same entries XADDed by redis-py, in pipelines of the same batch size."""
        key, batch = self.new_key(), self.args.batch
        before, started = self.meter.snapshot(), time.perf_counter()
        for start in range(0, len(self.fields), batch):
            pipe = self.client.pipeline(transaction=False)
            for entry in self.fields[start : start + batch]:
                pipe.xadd(key, entry, maxlen=MAXLEN, approximate=True)
            pipe.execute()
        elapsed, cpu = time.perf_counter() - started, self.meter.since(before)
        check_stream(self.client, key, self.fields)
        return elapsed, cpu


# --- --breakdown: where one drain's time goes, without editing the relay -------------------


class _TimedRedis:
    """A Redis client whose pipelines add their time (queuing and executing) to `spent`."""

    def __init__(self, client, spent: list[float]):
        self._client, self._spent = client, spent

    def pipeline(self, *args, **kwargs):
        return _TimedRedis(self._client.pipeline(*args, **kwargs), self._spent)

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._spent[0] += time.perf_counter() - started

        return timed


def breakdown(run: Run) -> dict:
    """One more drain, per batch: SQL on the relay's own thread by statement (the lease,
    the batch SELECT, the UPDATE on SQLite, the rest), the Redis pipelines, and what is
    left (fetching and building rows, the session's work, waiting for the previous
    batch's mark). On PostgreSQL the marking UPDATE runs in a thread beside these."""
    reset_published()
    redis_s = [0.0]
    with harness.recorded_statements(db.engine) as statements:
        elapsed, _cpu, key = run.drain(_TimedRedis(run.client, redis_s))
    run.check(key)
    steps = dict.fromkeys(("lease", "select", "update", "other sql"), 0.0)
    for sql, _params, seconds in statements:
        text = sql.lstrip().lower()
        kind = next((k for k in ("select", "update") if text.startswith(k)), "other sql")
        steps["lease" if "leases" in text else kind] += seconds
    steps["redis"] = redis_s[0]
    steps["rows and the rest"] = elapsed - sum(steps.values())
    batches = -(-run.args.events // run.args.batch)
    return {k: round(v * 1000 / batches, 2) for k, v in steps.items()}


# --- report --------------------------------------------------------------------------------


def summarize(runs: list[tuple[float, dict]], events: int) -> dict:
    walls = [wall for wall, _cpu in runs]
    return {
        "seconds": harness.spread(walls),
        "eps": {
            "best": round(events / min(walls)),
            "median": round(events / statistics.median(walls)),
        },
        "cpu_median_s": {
            part: round(statistics.median(cpu[part] for _wall, cpu in runs), 4)
            for part in ("python", "postgres", "redis", "total")
        },
    }


def ratio(relay: dict, raw: dict) -> dict:
    return {
        "best": round(relay["eps"]["best"] / raw["eps"]["best"], 4),
        "median": round(relay["eps"]["median"] / raw["eps"]["median"], 4),
        # The same ratio from CPU seconds of Python + PostgreSQL + Redis (medians).
        "cpu": round(raw["cpu_median_s"]["total"] / relay["cpu_median_s"]["total"], 4),
    }


def print_summary(result: dict) -> None:
    load = " -> ".join(f"{x:.1f}" for x in result["loadavg_1m"])
    print(
        f"\nRelay benchmark: {result['events']:,} events, batch {result['batch']}, "
        f"{result['database']}, Redis {result['redis_version']}, {result['cpus']} CPUs, "
        f"load {load}, {result['date']}"
    )
    print(f"  insert (untimed): {result['insert_s']:.2f} s")
    print(
        f"  {'':<10}{'best ev/s':>10}{'median ev/s':>12}   {'CPU s: py':>9}{'pg':>6}{'redis':>6}"
        "   runs (s)"
    )
    for name in ("relay", "raw"):
        row, cpu = result[name], result[name]["cpu_median_s"]
        runs = ", ".join(f"{t:.2f}" for t in row["seconds"]["runs"])
        print(
            f"  {name:<10}{row['eps']['best']:>10,}{row['eps']['median']:>12,}   "
            f"{cpu['python']:>9.2f}{cpu['postgres']:>6.2f}{cpu['redis']:>6.2f}   {runs}"
        )
    rat = result["ratio"]
    print(
        f"  relay / raw: median {rat['median']:.1%}, best {rat['best']:.1%}, by CPU seconds "
        f"{rat['cpu']:.0%} (Python + PostgreSQL + redis-server: less load-sensitive)"
    )
    batches = -(-result["events"] // result["batch"])
    for name, steps in result["breakdown"].items():
        raw_ms = result["raw"]["seconds"]["median"] * 1000 / batches
        print(f"\n  where {name}'s time goes, ms per batch (raw XADD: {raw_ms:.1f} ms):")
        for step, ms in steps.items():
            print(f"    {step:<18}{ms:>8.2f}  {ms / sum(steps.values()):>6.1%}")
    verdict = "PASS" if rat["median"] >= TARGET else "FAIL"
    print(f"\n  target: relay/raw >= {TARGET:.0%} (median-based): {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--redis-url", default=harness.DEFAULT_REDIS)
    parser.add_argument("--profile", action="store_true", help="cProfile one more drain")
    parser.add_argument("--breakdown", action="store_true", help="time the steps of one drain")
    args = harness.parse(parser, argv, QUICK)

    load_before = harness.load_1m()
    client = redis.Redis.from_url(args.redis_url, socket_timeout=10, socket_connect_timeout=2)
    client.ping()
    with ExitStack() as stack:
        url, backend = harness.fresh_database(args.database_url, stack, "bench_relay")
        meter = harness.CpuMeter(url, client)
        stack.callback(meter.close)
        stack.enter_context(harness.migrated_app(url))
        insert_s = insert_events(args.events)
        run = Run(client, meter, args, load_fields())
        stack.callback(lambda: run.keys and client.delete(*run.keys))

        def report(rep: int, results: dict) -> None:
            times = ", ".join(f"{name} {r[-1][0]:.3f} s" for name, r in results.items())
            print(f"  rep {rep + 1}: {times}", flush=True)

        # Raw right after each drain: alternating pairs under the same load.
        runs = harness.alternate({"relay": run.relay, "raw": run.raw}, args.repeats, report)
        steps = {"relay": breakdown(run)} if args.breakdown else {}
        if args.profile:
            profiler = cProfile.Profile()
            reset_published()
            run.check(run.drain(client, profiler)[2])
            harness.print_profile(profiler, limit=15, title="One relay drain")
    relay, raw = summarize(runs["relay"], args.events), summarize(runs["raw"], args.events)
    result = harness.run_info(
        "relay",
        load_before,
        database=backend,
        events=args.events,
        batch=args.batch,
        maxlen=MAXLEN,
        repeats=args.repeats,
        redis_version=client.info("server")["redis_version"],
        redis_py=redis.__version__,
        sqlalchemy=sa.__version__,
        insert_s=round(insert_s, 3),
        relay=relay,
        raw=raw,
        ratio=ratio(relay, raw),
        target=TARGET,
        breakdown=steps,
    )
    print_summary(result)
    harness.write_json(args.out, "relay", backend, result)
    return 0


if __name__ == "__main__":
    harness.main_guard(main)
