"""Health sweep: one scheduler tick over 1,000 installations while a tenth of them hang.

What we measure: the wall time of `HealthScheduler(app).sweep_once()` (lease, selection,
every probe in the bounded pool, results and events recorded) over N installations
(default 1,000) whose endpoints are on a fake runtime in a child process: `/ok/<i>`
answers at once, every tenth `/hang/<i>` sleeps three timeouts. Also the worker's CPU
seconds (all its threads), its peak RSS and threads during the sweep, ru_maxrss.
Against what: the health-check timeout (HEALTH_CHECK_DEFAULT_TIMEOUT, 3 s) itself.
Target: median wall time at most 2 x the timeout.

    python -m bench.health_sweep [--installations 1000] [--hang-every 10] [--timeout 3]
        [--concurrency N] [--repeats 3] [--database-url URL | sqlite] [--quick]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench import harness

TARGET = 2.0
PASSWORD = "bench-password-123"
QUICK = {"installations": 100, "timeout": 1, "repeats": 1}


# --- the fake runtime (a child process, so its work is not counted as the worker's) --------


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
        [sys.executable, "-m", "bench.health_sweep", "--serve", str(hang_seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=harness.ROOT,
    )

    def stop() -> None:
        proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()

    stack.callback(stop)
    return f"http://127.0.0.1:{int(proc.stdout.readline())}"


# --- setup (untimed) -----------------------------------------------------------------------


def populate(count: int, hang_every: int, runtime_url: str) -> int:
    """A company, an approved release without health_check (so the defaults apply: /health,
    the configured timeout) and `count` installations; returns how many hang."""
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
    return sum(hangs)


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


# --- the timed sweep -----------------------------------------------------------------------


def one_sweep(app, concurrency: int | None, installations: int) -> dict:
    from portal.worker.health_scheduler import HealthScheduler

    make_all_due()
    scheduler = HealthScheduler(app, concurrency=concurrency)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with harness.PeakSampler() as sampler:
        report = scheduler.sweep_once()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    scheduler.release()
    if not report.acted:
        raise AssertionError("the scheduler did not get the lease")
    if report.probed != installations:
        raise AssertionError(f"probed {report.probed} of {installations}")
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "peak_rss_mb": sampler.result["peak_mb"],
        "peak_threads": sampler.result["peak_threads"],
        "statuses": report.statuses,
        "changed": report.changed,
    }


def print_summary(result: dict) -> None:
    timeout = result["timeout_s"]
    print(
        f"\nHealth sweep: {result['installations']:,} installations, every "
        f"{result['hang_every']}th hanging, timeout {timeout:g} s, concurrency "
        f"{result['concurrency']}, {result['database']}, {result['cpus']} CPUs, "
        f"load {result['loadavg_1m'][0]} -> {result['loadavg_1m'][1]}"
    )
    print(f"  setup (untimed): {result['setup_s']:.1f} s, RSS before {result['rss_before_mb']} MB")
    print(
        f"  {'run':<5}{'wall s':>8}{'x timeout':>11}{'CPU s':>8}{'peak RSS MB':>13}{'threads':>9}"
    )
    for n, run in enumerate(result["runs"], 1):
        print(
            f"  {n:<5}{run['wall_s']:>8.2f}{run['wall_s'] / timeout:>11.2f}{run['cpu_s']:>8.2f}"
            f"{run['peak_rss_mb']:>13.1f}{run['peak_threads']:>9}   {run['statuses']}"
        )
    median = result["x_timeout"]["median"]
    print(f"  ru_maxrss over the whole run: {result['ru_maxrss_mb']} MB")
    verdict = "PASS" if median <= TARGET else "FAIL"
    print(f"\n  target: median wall time <= {TARGET:g} x timeout: {median:.2f} -> {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(__doc__)
    parser.add_argument("--installations", type=int, default=1000)
    parser.add_argument("--hang-every", type=int, default=10, help="every Nth endpoint hangs")
    parser.add_argument("--timeout", type=int, default=3, help="HEALTH_CHECK_DEFAULT_TIMEOUT")
    parser.add_argument("--concurrency", type=int, default=None, help="default: the config's")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--serve", type=float, default=None, help=argparse.SUPPRESS)
    args = harness.parse(parser, argv, QUICK)
    if args.serve is not None:
        serve(args.serve)
        return 0

    load_before = harness.load_1m()
    config = {"HEALTH_CHECK_DEFAULT_TIMEOUT": args.timeout}
    if args.concurrency:
        config["HEALTH_CHECK_CONCURRENCY"] = args.concurrency
    with ExitStack() as stack:
        runtime_url = start_runtime(stack, hang_seconds=args.timeout * 3)
        url, backend = harness.fresh_database(args.database_url, stack, "bench_health")
        app = stack.enter_context(harness.migrated_app(url, **config))
        started = time.perf_counter()
        hanging = populate(args.installations, args.hang_every, runtime_url)
        setup_s, rss_before = time.perf_counter() - started, harness.PeakSampler().idle

        def report(rep: int, results: dict) -> None:
            run = results["sweep"][-1]
            print(f"  sweep {rep + 1}: {run['wall_s']:.2f} s, CPU {run['cpu_s']:.2f} s", flush=True)

        sweep = {"sweep": lambda: one_sweep(app, args.concurrency, args.installations)}
        runs = harness.alternate(sweep, args.repeats, report)["sweep"]
        concurrency = app.config["HEALTH_CHECK_CONCURRENCY"]
    result = harness.run_info(
        "health_sweep",
        load_before,
        database=backend,
        installations=args.installations,
        hanging=hanging,
        hang_every=args.hang_every,
        timeout_s=args.timeout,
        concurrency=concurrency,
        setup_s=round(setup_s, 2),
        rss_before_mb=round(rss_before / 1024, 1),
        ru_maxrss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        runs=runs,
        x_timeout=harness.spread([r["wall_s"] / args.timeout for r in runs], digits=3),
        median_cpu_s=round(statistics.median(r["cpu_s"] for r in runs), 3),
        target_x_timeout=TARGET,
    )
    print_summary(result)
    harness.write_json(args.out, "health_sweep", backend, result)
    return 0  # missing the target is reported, not a failure (see run_all.py)


if __name__ == "__main__":
    harness.main_guard(main)
