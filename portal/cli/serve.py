"""`python -m portal.cli.serve`: what `make run` starts, the web app under gunicorn and the
worker side by side, until Ctrl-C or SIGTERM.

Each child runs in its own session, so the terminal's Ctrl-C reaches only this process,
which then asks both children to stop (SIGTERM), waits at most `--grace` seconds for them
and kills what is left. Nothing acknowledged is lost by a kill: events wait in the outbox
and the next worker publishes them.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _children(port: int, workers: int, threads: int) -> list[list[str]]:
    bindir = Path(sys.executable).parent
    gunicorn = [
        str(bindir / "gunicorn"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--graceful-timeout",
        "2",
        "--access-logfile",
        "-",
        "wsgi:app",
    ]
    worker = [str(bindir / "flask"), "--app", "wsgi", "worker"]
    return [gunicorn, worker]


def _stop(processes: list[subprocess.Popen], grace: float) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in processes:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            # The whole session: gunicorn's own workers go with their master.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8005")))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--grace", type=float, default=3.0, help="seconds before a kill")
    args = parser.parse_args(argv)

    stopping = False

    def request_stop(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    processes = [
        subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
        for cmd in _children(args.port, args.workers, args.threads)
    ]
    print(f"Module Registry on http://127.0.0.1:{args.port}  (Ctrl-C stops)", flush=True)
    while not stopping and all(p.poll() is None for p in processes):
        time.sleep(0.2)
    failed = [p for p in processes if p.poll() not in (None, 0)]
    _stop(processes, args.grace)
    print("stopped", flush=True)
    return 1 if failed and not stopping else 0


if __name__ == "__main__":
    sys.exit(main())
