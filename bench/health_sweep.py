"""Health sweep: 1,000 installations checked at once while a tenth of their endpoints hang.

Sets up a fresh database with N installations (default 1,000) whose endpoint URLs point at
a local fake runtime (a ThreadingHTTPServer in a child process, so its work is not counted
as the worker's): `/ok/<i>` answers 200 at once, `/hang/<i>` (every tenth) sleeps well
past the timeout. Then, REPEATS times, all of them are made due again and one
`HealthScheduler(app).sweep_once()` runs, as `flask worker` would on its first tick.

Reports, per sweep: wall time as a multiple of the timeout (target: at most 2, median),
the worker process's CPU time (all its threads), its peak RSS during the sweep (sampled)
and over the whole run (ru_maxrss), and the peak number of threads.

    .venv/bin/python bench/health_sweep.py [--installations 1000] [--hang-every 10]
        [--timeout 3] [--concurrency N] [--repeats 3]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres | sqlite]

A PostgreSQL URL names the server: a fresh database is created there and dropped at the
end. `sqlite` uses a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET = 2.0
OUT = Path(__file__).resolve().parent / "out" / "health_sweep.json"
PASSWORD = "bench-password-123"


# --- the fake runtime (child process) ----------------------------------------------------


from _common import fresh_postgres  # noqa: E402  (bench/ is on sys.path)


def serve(hang_seconds: float) -> None:
    """Run the fake runtime on 127.0.0.1; print the port; stop when stdin closes."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path.startswith("/hang/"):
                time.sleep(hang_seconds)
            body = b'{"status": "ok"}'
            try:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the checker gave up long ago

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 4096
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # until the parent closes the pipe (or dies)
    server.shutdown()


def start_runtime(stack: ExitStack, hang_seconds: float) -> str:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(hang_seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def stop() -> None:
        proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()

    stack.callback(stop)
    port = int(proc.stdout.readline())
    return f"http://127.0.0.1:{port}"


# --- database (as bench/relay.py does it) ------------------------------------------------


def fresh_database(spec: str, stack: ExitStack) -> tuple[str, str]:
    """A new, empty database for this run; returns (url, label). Dropped by `stack`."""
    import tempfile

    if spec == "sqlite" or spec.startswith("sqlite:"):
        tmp = tempfile.TemporaryDirectory(prefix="bench-health-")
        stack.enter_context(tmp)
        return f"sqlite:///{Path(tmp.name) / 'health.db'}", "sqlite"
    return fresh_postgres(spec, stack, "bench_health")


@contextmanager
def _disposing_engine():
    """Close the pool's connections (inside the app context) before the database is dropped."""
    from portal.extensions import db

    try:
        yield
    finally:
        db.session.remove()
        db.engine.dispose()


# --- measuring --------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Sampler:
    """Peak RSS and thread count of this process, sampled every 10 ms."""

    def __init__(self):
        self.peak_rss = self.peak_threads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, rss_bytes())
            self.peak_threads = max(self.peak_threads, threading.active_count())
            self._stop.wait(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# --- setup ------------------------------------------------------------------------------


def populate(count: int, hang_every: int, runtime_url: str) -> list[bool]:
    """A company, a release without health_check (so the defaults apply: /health, the
    configured timeout) and `count` installations; returns which ones hang."""
    import sqlalchemy as sa

    from portal.extensions import db
    from portal.models import Company, Installation
    from portal.services.accounts import users
    from portal.services.publishing.releases import publish_release
    from portal.services.publishing.submissions import Submission
    from portal.services.review.decisions import change_status

    users.create_company("bench", "Bench")
    dev = users.create_user("dev@bench.test", PASSWORD, "developer", "bench")
    admin = users.create_user("admin@bench.test", PASSWORD, "platform_admin")
    manifest = {"name": "bench-runtime", "version": "1.0.0", "description": "x", "author": "b"}
    release = publish_release(Submission(manifest_json=manifest), actor=dev)
    change_status(release.id, "approved", actor=admin)
    company_id = db.session.execute(sa.select(Company.id).where(Company.slug == "bench")).scalar()
    hangs = [i % hang_every == 0 for i in range(count)]
    rows = [
        {
            "company_id": company_id,
            "module_name": f"bench-{i:05d}",
            "module_id": release.id,
            "status": "installed",
            "config": {},
            "endpoint_url": f"{runtime_url}/{'hang' if hang else 'ok'}/{i}",
            "revision": 1,
            "health_status": "unknown",
        }
        for i, hang in enumerate(hangs)
    ]
    db.session.execute(sa.insert(Installation), rows)
    db.session.commit()
    db.session.remove()
    return hangs


def make_all_due() -> None:
    import sqlalchemy as sa

    from portal.extensions import db
    from portal.models import Installation

    db.session.execute(
        sa.update(Installation).values(
            health_status="unknown", health_checked_at=None, health_message=None
        )
    )
    db.session.commit()
    db.session.remove()


def one_sweep(app, concurrency: int | None) -> dict:
    from portal.worker.health_scheduler import HealthScheduler

    scheduler = HealthScheduler(app, concurrency=concurrency)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with Sampler() as sampler:
        report = scheduler.sweep_once()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    scheduler.release()
    if not report.acted:
        raise AssertionError("the scheduler did not get the lease")
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "peak_rss_mb": round(sampler.peak_rss / 2**20, 1),
        "peak_threads": sampler.peak_threads,
        "probed": report.probed,
        "statuses": report.statuses,
        "changed": report.changed,
    }


# --- report -----------------------------------------------------------------------------


def print_summary(result: dict) -> None:
    timeout = result["timeout_s"]
    print()
    print(
        f"Health sweep: {result['installations']:,} installations, every "
        f"{result['hang_every']}th hanging, timeout {timeout:g} s, concurrency "
        f"{result['concurrency']}, {result['database']}, {result['cpus']} CPUs, "
        f"load {result['loadavg_1m'][0]} -> {result['loadavg_1m'][1]}"
    )
    print(
        f"  setup (untimed): {result['setup_s']:.1f} s, "
        f"RSS before the sweeps {result['rss_before_mb']} MB"
    )
    print(
        f"  {'run':<5}{'wall s':>8}{'x timeout':>11}{'CPU s':>8}{'peak RSS MB':>13}"
        f"{'threads':>9}   statuses"
    )
    for n, run in enumerate(result["runs"], 1):
        print(
            f"  {n:<5}{run['wall_s']:>8.2f}{run['wall_s'] / timeout:>11.2f}{run['cpu_s']:>8.2f}"
            f"{run['peak_rss_mb']:>13.1f}{run['peak_threads']:>9}   {run['statuses']}"
        )
    median = result["median_x_timeout"]
    verdict = "PASS" if median <= TARGET else "FAIL"
    print(f"  ru_maxrss over the whole run: {result['ru_maxrss_mb']} MB")
    print(f"\n  target: median wall time <= {TARGET:g} x timeout: {median:.2f} -> {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--installations", type=int, default=1000)
    parser.add_argument("--hang-every", type=int, default=10, help="every Nth endpoint hangs")
    parser.add_argument("--timeout", type=int, default=3, help="HEALTH_CHECK_DEFAULT_TIMEOUT")
    parser.add_argument("--concurrency", type=int, default=None, help="default: the config's")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--database-url", default=DEFAULT_SERVER, help="PostgreSQL server or 'sqlite'"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--serve", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0

    import flask_migrate

    from portal import create_app
    from portal.config import TestConfig
    from portal.extensions import db

    load_start = os.getloadavg()
    with ExitStack() as stack:
        runtime_url = start_runtime(stack, hang_seconds=args.timeout * 3)
        url, backend = fresh_database(args.database_url, stack)
        overrides = {"HEALTH_CHECK_DEFAULT_TIMEOUT": args.timeout}
        if args.concurrency:
            overrides["HEALTH_CHECK_CONCURRENCY"] = args.concurrency
        app = create_app(TestConfig(url, **overrides))
        with app.app_context(), _disposing_engine():
            started = time.perf_counter()
            flask_migrate.upgrade()
            db.session.remove()
            hangs = populate(args.installations, args.hang_every, runtime_url)
            setup_s = time.perf_counter() - started
            rss_before = rss_bytes()
            runs = []
            for rep in range(args.repeats):
                make_all_due()
                run = one_sweep(app, args.concurrency)
                runs.append(run)
                print(
                    f"  sweep {rep + 1}: {run['wall_s']:.2f} s "
                    f"({run['wall_s'] / args.timeout:.2f} x timeout), CPU {run['cpu_s']:.2f} s, "
                    f"{run['statuses']}",
                    flush=True,
                )
                if run["probed"] != args.installations:
                    raise AssertionError(f"probed {run['probed']} of {args.installations}")
            concurrency = app.config["HEALTH_CHECK_CONCURRENCY"]
    ratios = [r["wall_s"] / args.timeout for r in runs]
    result = {
        "benchmark": "health_sweep",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": backend,
        "installations": args.installations,
        "hanging": sum(hangs),
        "hang_every": args.hang_every,
        "timeout_s": args.timeout,
        "concurrency": concurrency,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "loadavg_1m": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        "python": platform.python_version(),
        "setup_s": round(setup_s, 2),
        "rss_before_mb": round(rss_before / 2**20, 1),
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "runs": runs,
        "median_x_timeout": round(statistics.median(ratios), 3),
        "best_x_timeout": round(min(ratios), 3),
        "median_cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
        "target_x_timeout": TARGET,
    }
    print_summary(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results[backend] = result
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"  written to {args.out} ({backend})")
    return 0  # missing the target is reported, not a failure (see run_all.py)


if __name__ == "__main__":
    sys.exit(main())
