"""The harness every benchmark in bench/ runs on, so each script only says what it measures.

- the command line: `--database-url`, `--out` and `--quick` (smallest sizes, one
  repetition: a smoke run that proves the script works, not a measurement);
- `fresh_database`: a uniquely named PostgreSQL database (or a temporary SQLite file),
  dropped at the end even on failure; `migrated_app`: the app on it, migrated;
- `alternate` and `spread`: contenders timed in turn, repetition after repetition, so they
  see the same machine load; best and median of the runs;
- `CpuMeter` (CPU seconds from /proc of this process, the database's backends and
  redis-server) and `PeakSampler` (peak RSS and threads of a process, from /proc);
- `run_info` (date, CPUs, versions, the 1-minute load average around the run) and
  `write_json` (bench/out/<name>.json, one entry per database or configuration);
- `Gunicorn`, `http_get` and `instrument`: a bench app served over real HTTP, with an
  `X-Bench-Timings` header and optional cProfile of chosen requests.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import os
import platform
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


# --- command line --------------------------------------------------------------------------


def arguments(doc: str, *, sqlite: bool = True) -> argparse.ArgumentParser:
    """A parser with the options every benchmark has; the script adds its own."""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n", 1)[0], formatter_class=argparse.RawTextHelpFormatter
    )
    where = "PostgreSQL server (a fresh database is created on it)" + (
        ", or 'sqlite'" if sqlite else ""
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE, help=where)
    parser.add_argument("--out", type=Path, default=None, help="JSON file (bench/out/<name>.json)")
    parser.add_argument(
        "--quick", action="store_true", help="smallest sizes, one repetition: a smoke run"
    )
    return parser


def parse(
    parser: argparse.ArgumentParser, argv: list[str] | None, quick: dict
) -> argparse.Namespace:
    """Parse `argv`; with --quick, options not given on the command line take `quick`'s values."""
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args


def main_guard(main: Callable[[], int]) -> None:
    """Run `main`; SIGTERM unwinds its ExitStack (gunicorn, databases, temp files) too."""

    def _exit(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    sys.exit(main())


# --- databases -----------------------------------------------------------------------------


def admin_url(url: str) -> str:
    """The server's `postgres` database, for CREATE and DROP DATABASE (psycopg's scheme)."""
    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://"))
    return urlunsplit(parts._replace(path="/postgres"))


def fresh_database(spec: str, stack: ExitStack, prefix: str) -> tuple[str, str]:
    """A new, empty database on the server `spec` names, dropped by `stack`; returns
    (url, "postgresql" or "sqlite"). `sqlite` is a temporary file, `sqlite:///path` a
    file that must not exist yet."""
    if spec.startswith("sqlite"):
        return f"sqlite:///{_sqlite_file(spec, stack, prefix)}", "sqlite"
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    server = admin_url(spec)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    stack.callback(drop)
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}")), "postgresql"


def _sqlite_file(spec: str, stack: ExitStack, prefix: str) -> Path:
    if spec in ("sqlite", "sqlite://", "sqlite:///:memory:"):
        return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix))) / "bench.db"
    path = Path(spec.removeprefix("sqlite:///"))
    if path.exists():
        raise SystemExit(f"{path} exists: the benchmark needs a file of its own")
    for suffix in ("", "-wal", "-shm", "-journal"):
        stack.callback(Path(f"{path}{suffix}").unlink, missing_ok=True)
    return path


@contextmanager
def migrated_app(url: str, **config):
    """The app on `url` (TestConfig with `config`), migrated, inside its app context. On the
    way out the pool's connections are closed, so the database can be dropped."""
    import flask_migrate

    from portal import create_app
    from portal.config import TestConfig
    from portal.extensions import db

    app = create_app(TestConfig(url, **config))
    with app.app_context():
        try:
            flask_migrate.upgrade()
            db.session.remove()
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


def vacuum_analyze(table: str = "") -> None:
    """Fresh statistics and no dead rows, as autovacuum would leave them (untimed)."""
    from portal.extensions import db

    db.session.remove()
    postgres = db.engine.dialect.name == "postgresql"
    sql = f"{'VACUUM ANALYZE' if postgres else 'ANALYZE'} {table}".strip()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(sql)


# --- timed runs ----------------------------------------------------------------------------


def alternate(contenders: dict[str, Callable], repeats: int, report=None) -> dict[str, list]:
    """Call each contender once per repetition, in turn, so a baseline and what it is
    compared with see the same machine load; returns each one's results in order.
    `report(rep, results)` runs after each repetition (progress on stdout)."""
    results: dict[str, list] = {name: [] for name in contenders}
    for rep in range(repeats):
        for name, run in contenders.items():
            results[name].append(run())
        if report:
            report(rep, results)
    return results


def spread(values: list[float], scale: float = 1.0, digits: int = 4) -> dict:
    """The runs (times `scale`), their best (lowest) and their median."""
    scaled = [v * scale for v in values]
    return {
        "runs": [round(v, digits) for v in scaled],
        "best": round(min(scaled), digits),
        "median": round(statistics.median(scaled), digits),
    }


def load_1m() -> float:
    """Other work on the machine skews every figure: the 1-minute load average."""
    return round(os.getloadavg()[0], 2)


def proc_cpu(pid: int) -> float:
    """utime + stime of a local process, in seconds (0 if it is gone or not readable)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of this process, the PostgreSQL backends of `database_url` and
    redis-server, whatever else runs: on a shared machine they move far less than wall
    time. The servers must be local for their share to count."""

    def __init__(self, database_url: str | None = None, redis_client=None):
        self.redis_pid = None
        if redis_client is not None:
            pid = int(redis_client.info("server").get("process_id", 0))
            self.redis_pid = pid if os.path.exists(f"/proc/{pid}/stat") else None
        self.admin = None
        if database_url and database_url.startswith("postgresql"):
            import psycopg

            self.database = urlsplit(database_url).path.lstrip("/")
            self.admin = psycopg.connect(admin_url(database_url), autocommit=True)

    def close(self) -> None:
        if self.admin is not None:
            self.admin.close()

    def snapshot(self) -> dict:
        backends = {}
        if self.admin is not None:
            rows = self.admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
            ).fetchall()
            backends = {pid: proc_cpu(pid) for (pid,) in rows}
        redis = proc_cpu(self.redis_pid) if self.redis_pid else 0.0
        return {"python": time.process_time(), "postgres": backends, "redis": redis}

    def since(self, before: dict) -> dict[str, float]:
        now = self.snapshot()
        used = {
            "python": now["python"] - before["python"],
            "postgres": sum(c - before["postgres"].get(p, 0.0) for p, c in now["postgres"].items()),
            "redis": now["redis"] - before["redis"],
        }
        used["total"] = sum(used.values())
        return {k: round(v, 4) for k, v in used.items()}


def _status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", "rb") as fh:
        for line in fh:
            if line.startswith(field.encode() + b":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


class PeakSampler(threading.Thread):
    """Peak VmRSS and thread count of process `pid`, read every `interval` s while the
    block runs. The kernel's own peak (VmHWM) is reset at the start where allowed, so a
    peak between two samples is not missed. `result` is filled on exit."""

    def __init__(self, pid: int | None = None, interval: float = 0.01):
        super().__init__(daemon=True)
        self.pid, self.interval = pid or os.getpid(), interval
        self.idle = self.peak = _status(self.pid, "VmRSS")
        self.threads = _status(self.pid, "Threads")
        self.samples = 0
        self.result: dict = {}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.peak = max(self.peak, _status(self.pid, "VmRSS"))
            self.threads = max(self.threads, _status(self.pid, "Threads"))
            self.samples += 1

    def __enter__(self) -> PeakSampler:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self.join()
        self.peak = max(self.peak, _status(self.pid, "VmRSS"))
        hwm = _status(self.pid, "VmHWM") if self.hwm_reset else None
        self.result = {
            "idle_mb": round(self.idle / 1024, 2),
            "peak_mb": round(self.peak / 1024, 2),
            "delta_mb": round((self.peak - self.idle) / 1024, 2),
            "hwm_delta_mb": round((hwm - self.idle) / 1024, 2) if hwm else None,
            "peak_threads": self.threads,
            "samples": self.samples,
        }


@contextmanager
def recorded_statements(engine):
    """Every statement `engine` runs on this thread inside the block, as a list of
    (sql, parameters, seconds inside cursor.execute)."""
    from sqlalchemy import event

    statements: list[tuple[str, object, float]] = []
    thread, started = threading.get_ident(), []

    def before(_conn, _cursor, _statement, _params, _context, _many):
        if threading.get_ident() == thread:
            started.append(time.perf_counter())

    def after(_conn, _cursor, statement, params, _context, _many):
        if threading.get_ident() == thread:
            statements.append((statement, params, time.perf_counter() - started.pop()))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def print_profile(source, sort: str = "cumulative", limit: int = 20, title: str = "") -> None:
    """The top `limit` functions of a cProfile.Profile or a .prof file."""
    out = io.StringIO()
    stats = pstats.Stats(
        source if isinstance(source, cProfile.Profile) else str(source), stream=out
    )
    stats.sort_stats(sort).print_stats(limit)
    print(f"\n{title or 'cProfile'} (top {limit}, {sort}):")
    print(out.getvalue().strip())


# --- results -------------------------------------------------------------------------------


def run_info(benchmark: str, load_before: float, **extra) -> dict:
    """What every result records about its run."""
    return {
        "benchmark": benchmark,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        # 2 CPUs: a load above 2 means the figures were taken under contention.
        "loadavg_1m": [load_before, load_1m()],
        "python": platform.python_version(),
        **extra,
    }


def write_json(path: Path | None, benchmark: str, key: str, result: dict) -> None:
    """Keep `result` under `key` in the benchmark's JSON file (one entry per database or
    configuration, so runs stay side by side)."""
    path = path or OUT / f"{benchmark}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(path.read_text()) if path.exists() else {}
    results[key] = result
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"  written to {path} ({key})")


# --- a bench app under gunicorn ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(database_url: str, tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a production-like app: its own secret, instance and store
    folders under `tmp`, no Redis, nothing inherited for gunicorn or Flask."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN", "FLASK"))}
    for key in ("REDIS_URL", "SERVICE_REGISTRY_URL", "AUTH_SERVICE_URL", "DEBUG"):
        env.pop(key, None)
    for folder in ("instance", "store", "cwd"):
        (tmp / folder).mkdir(exist_ok=True)
    env.update(
        DATABASE_URL=database_url,
        ENVIRONMENT="production",
        SECRET_KEY=uuid.uuid4().hex + uuid.uuid4().hex,
        INSTANCE_PATH=str(tmp / "instance"),
        MODULE_STORAGE_PATH=str(tmp / "store"),
        PYTHONDONTWRITEBYTECODE="1",
        **extra,
    )
    return env


class Gunicorn:
    """gunicorn serving `app` ("bench.<script>:bench_app()") on a free local port, from
    an empty folder (no gunicorn.conf.py is picked up), configured by `env` only:
    sync workers, or gthread with `threads` > 1."""

    def __init__(self, app: str, env: dict[str, str], *, workers: int = 1, threads: int = 1):
        self.port = free_port()
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        kind = ["--worker-class", "sync"] if threads <= 1 else ["--threads", str(threads)]
        options = ["--backlog", "2048", "--timeout", "120", "--graceful-timeout", "5"]
        self.process = subprocess.Popen(
            [gunicorn, "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers)]
            + [*kind, *options, "--log-level", "warning", "--pythonpath", str(ROOT), app],
            env=env,
            cwd=Path(env["INSTANCE_PATH"]).with_name("cwd"),
        )

    def wait_ready(self, path: str, timeout: float = 180.0) -> None:
        """Until a worker answers `path` (booting takes seconds on a busy machine)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                http_get(self.port, path, timeout=10)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer in time")

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(stack: ExitStack, app: str, env: dict, ready: str, **kwargs) -> Gunicorn:
    """A Gunicorn, stopped by `stack`, once it answers `ready`."""
    server = Gunicorn(app, env, **kwargs)
    stack.callback(server.stop)
    server.wait_ready(ready)
    return server


def http_get(port: int, target: str, headers: dict | None = None, timeout: float = 120):
    """(status, headers, body) of a GET on the local server."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", target, headers={"User-Agent": "bench", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def parse_timings(header: str | None) -> dict[str, float]:
    """An X-Bench-Timings header ("step=ms;...") as a dict."""
    parts = (part.partition("=") for part in (header or "").split(";"))
    return {step: float(value) for step, _eq, value in parts if value}


def timed(step: str, func):
    """`func`, adding its time to the request's `step` in X-Bench-Timings."""
    from flask import g

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            timings = g.setdefault("bench_timings", {})
            timings[step] = timings.get(step, 0.0) + time.perf_counter() - started

    return wrapper


def instrument(app, *, count_sql: bool = False):
    """Add to a bench app an `X-Bench-Timings` header: "app" (the request from routing to
    the response) and any step wrapped with `timed()`; with `count_sql`, "sql" (time in
    cursor.execute) and "statements" (a count). With $BENCH_PROFILE_DIR set, a request
    carrying "X-Bench-Profile: <name>" runs under cProfile (the app's part only: a
    download's bytes are sent by gunicorn afterwards), dumped to <dir>/<name>.prof."""
    from flask import g, has_request_context
    from sqlalchemy import event

    from portal.extensions import db

    @app.before_request
    def _start_clock():
        g.bench_started = time.perf_counter()

    @app.after_request
    def _timings_header(response):
        if "bench_started" in g:
            timings = {**g.get("bench_timings", {}), "app": time.perf_counter() - g.bench_started}
            text = ";".join(f"{step}={s * 1000:.3f}" for step, s in timings.items())
            if count_sql:
                text += f";statements={g.get('bench_statements', 0)}"
            response.headers["X-Bench-Timings"] = text
        return response

    if count_sql:
        with app.app_context():
            engine = db.engine

        @event.listens_for(engine, "before_cursor_execute")
        def _sql_start(_conn, _cursor, _statement, _params, context, _many):
            context._bench_started = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _sql_end(_conn, _cursor, _statement, _params, context, _many):
            if has_request_context():
                timings = g.setdefault("bench_timings", {})
                timings["sql"] = (
                    timings.get("sql", 0.0) + time.perf_counter() - context._bench_started
                )
                g.bench_statements = g.get("bench_statements", 0) + 1

    profile_dir = os.environ.get("BENCH_PROFILE_DIR")
    if profile_dir:
        inner = app.wsgi_app

        def profiled(environ, start_response):
            name = environ.get("HTTP_X_BENCH_PROFILE")
            if not name or not name.replace("-", "").isalnum():
                return inner(environ, start_response)
            profiler = cProfile.Profile()
            profiler.enable()
            try:
                return inner(environ, start_response)
            finally:
                profiler.disable()
                profiler.dump_stats(os.path.join(profile_dir, f"{name}.prof"))

        app.wsgi_app = profiled
    return app
