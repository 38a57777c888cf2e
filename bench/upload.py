"""Package upload and download through the app under gunicorn, over real HTTP.

Builds ~50 MB packages of incompressible data (a zip and a tar.gz: module.yaml plus
10 x 5 MiB random members, rebuilt for every repetition with a new version), starts
gunicorn (1 sync worker) on a free local port serving bench/_upload_app.py, and measures,
in the same run:

- upload: wall time of a multipart POST /api/v1/modules/ (first byte sent to response
  read: body parsed, hashed and written as it arrives, package inspected, stored, row and
  event committed), as a ratio of `openssl dgst -sha256` on the same file. Target for the
  zip: at most 4x (median).
- memory: the worker's peak resident set above its idle size during each upload (VmRSS
  sampled every 5 ms, and the kernel's VmHWM after resetting it). Target: under 16 MB.
- download: GET /api/v1/modules/<id>/package (bearer token) versus a bare Flask
  `send_file` of the same bytes on the same server (GET /bench/raw/<file>): time to the
  response headers and to the last byte, 1 MiB reads. Target: at most 1.25x (median),
  headers within 20 ms. The downloaded bytes' SHA256 is checked against the upload's.

    .venv/bin/python bench/upload.py [--database-url URL | sqlite] [--size-mb 50]
        [--repeats 3] [--downloads 5] [--profile] [--variants NAME,... [--variants ...]]

A PostgreSQL URL names the server: a fresh database is created there and dropped at the
end. `sqlite` uses a temporary SQLite file. gunicorn, the database and the temp folders
(packages, store, instance) are removed at the end, even on failure. Results go to
bench/out/upload.json, one entry per database (and per set of configurations).

--variants patches proposed app changes (PROPOSALS below; portal/ is not edited) into a
gunicorn of its own; given several times, the configurations run side by side in one run,
uploads and downloads alternating between them, so they see the same machine load.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
import zipfile
from contextlib import ExitStack
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
OUT = BENCH / "out" / "upload.json"
MIB = 1024 * 1024
READ_SIZE = MIB
MEMBERS = 10
REPEATS = 3
DOWNLOADS = 5
SAMPLE_SECONDS = 0.005
MAX_MODULE_SIZE_MB = 60
KINDS = ("zip", "tar.gz")
PUBLISHER = "bench"
DEVELOPER = "dev@bench.test"

TARGET_UPLOAD_RATIO = 4.0  # zip, median
TARGET_MEMORY_MB = 16.0
TARGET_DOWNLOAD_RATIO = 1.25
TARGET_FIRST_BYTE_MS = 20.0


# --- database and accounts -----------------------------------------------------------------


from _common import fresh_postgres  # noqa: E402  (bench/ is on sys.path)


def fresh_database(spec: str, stack: ExitStack, tmp: Path) -> tuple[str, str]:
    """A new, empty database for this run; returns (url, label). Dropped by `stack`."""
    if spec == "sqlite" or spec.startswith("sqlite:"):
        if spec in ("sqlite", "sqlite://", "sqlite:///:memory:"):
            return f"sqlite:///{tmp / 'upload.db'}", "sqlite"
        path = Path(spec.removeprefix("sqlite:///"))
        if path.exists():
            raise SystemExit(f"{path} exists: the benchmark needs a file of its own")
        stack.callback(_unlink_sqlite, path)
        return f"sqlite:///{path}", "sqlite"
    return fresh_postgres(spec, stack, "bench_upload")


def _unlink_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def prepare_database(url: str, storage: Path) -> str:
    """Migrate, add a company and a developer; return the developer's personal API token."""
    import flask_migrate

    from portal import create_app
    from portal.config import TestConfig
    from portal.extensions import db
    from portal.services.accounts import users

    app = create_app(
        TestConfig(url, MODULE_STORAGE_PATH=str(storage), MAX_MODULE_SIZE_MB=MAX_MODULE_SIZE_MB)
    )
    with app.app_context():
        try:
            flask_migrate.upgrade()
            db.session.remove()
            users.create_company(PUBLISHER, "Bench")
            user = users.create_user(DEVELOPER, secrets.token_urlsafe(16), "developer", "bench")
            _token, plain = users.create_api_token(user, "upload benchmark")
        finally:
            db.session.remove()
            db.engine.dispose()  # no idle connection left to block DROP DATABASE
    return plain


# --- packages ------------------------------------------------------------------------------


def manifest_yaml(name: str, version: str) -> bytes:
    return (
        f"name: {name}\nversion: {version}\n"
        f"description: Upload benchmark package ({name})\nauthor: Bench Developers\n"
    ).encode()


def build_package(kind: str, path: Path, name: str, version: str, blobs: list[bytes]) -> None:
    """A package of `blobs` (incompressible, so the archive is about their size)."""
    text = manifest_yaml(name, version)
    if kind == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"{name}/module.yaml", text)
            for i, blob in enumerate(blobs):
                zf.writestr(f"{name}/data/blob-{i:02d}.bin", blob)
        return
    with tarfile.open(path, "w:gz", compresslevel=6) as tf:
        for member, data in [
            (f"{name}/module.yaml", text),
            *((f"{name}/data/blob-{i:02d}.bin", blob) for i, blob in enumerate(blobs)),
        ]:
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tf.addfile(info, io.BytesIO(data))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(READ_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def openssl_seconds(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", str(path)], check=True, capture_output=True)
    return time.perf_counter() - started


# --- gunicorn ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn with one sync worker serving bench/_upload_app.py."""

    def __init__(self, env: dict[str, str], cwd: Path):
        self.port = free_port()
        gunicorn = ROOT / ".venv" / "bin" / "gunicorn"
        if not gunicorn.exists():
            gunicorn = Path(sys.executable).with_name("gunicorn")
        self.process = subprocess.Popen(
            [
                str(gunicorn),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--worker-class",
                "sync",
                "--timeout",
                "120",
                "--graceful-timeout",
                "5",
                "--log-level",
                "warning",
                "--pythonpath",
                f"{ROOT},{BENCH}",
                "_upload_app:app",
            ],
            env=env,
            cwd=cwd,  # an empty folder: no gunicorn.conf.py is picked up
        )
        self.worker_pid = 0

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/bench/raw/-")
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("gunicorn did not answer in time")
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = children.read_text().split()
        if len(pids) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {pids}")
        self.worker_pid = int(pids[0])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def server_env(url: str, storage: Path, instance: Path, raw_dir: Path, variants: list[str]):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN", "FLASK"))}
    for key in ("REDIS_URL", "SERVICE_REGISTRY_URL", "AUTH_SERVICE_URL", "DEBUG"):
        env.pop(key, None)
    env.update(
        DATABASE_URL=url,
        ENVIRONMENT="production",
        SECRET_KEY=secrets.token_hex(32),
        INSTANCE_PATH=str(instance),
        MODULE_STORAGE_PATH=str(storage),
        MAX_MODULE_SIZE_MB=str(MAX_MODULE_SIZE_MB),
        BENCH_RAW_DIR=str(raw_dir),
        BENCH_VARIANTS=",".join(variants),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


# --- memory --------------------------------------------------------------------------------


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", "rb") as fh:
        for line in fh:
            if line.startswith(field.encode()):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def rss_kib(pid: int) -> int:
    return _status_kib(pid, "VmRSS:")


def reset_hwm(pid: int) -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of `pid` to its current RSS."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class RssSampler(threading.Thread):
    """Samples a process's VmRSS every SAMPLE_SECONDS and keeps the peak."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = self.idle = rss_kib(pid)
        self.samples = 0
        self.hwm_reset = reset_hwm(pid)
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, rss_kib(self.pid))
            self.samples += 1

    def finish(self) -> dict:
        self._done.set()
        self.join()
        self.peak = max(self.peak, rss_kib(self.pid))
        hwm = _status_kib(self.pid, "VmHWM:") if self.hwm_reset else None
        return {
            "idle_mb": round(self.idle / 1024, 2),
            "peak_mb": round(self.peak / 1024, 2),
            "delta_mb": round((self.peak - self.idle) / 1024, 2),
            "hwm_delta_mb": round((hwm - self.idle) / 1024, 2) if hwm else None,
            "samples": self.samples,
        }


# --- HTTP client ---------------------------------------------------------------------------


def parse_timings(header: str | None) -> dict[str, float]:
    if not header:
        return {}
    steps = (part.split("=", 1) for part in header.split(";") if "=" in part)
    return {step: float(ms) for step, ms in steps}


def upload(
    port: int, token: str, path: Path, filename: str, extra: dict[str, str] | None = None
) -> tuple[float, dict, dict]:
    """POST the file as a multipart package part, streamed in 1 MiB pieces.
    Returns (seconds, response JSON, server timings in ms)."""
    boundary = f"bench-{uuid.uuid4().hex}"
    preamble = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="package"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    epilogue = f"\r\n--{boundary}--\r\n".encode()
    length = len(preamble) + path.stat().st_size + len(epilogue)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.connect()
    try:
        with open(path, "rb") as fh:
            started = time.perf_counter()
            conn.putrequest("POST", "/api/v1/modules/", skip_accept_encoding=True)
            conn.putheader("Authorization", f"Bearer {token}")
            conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
            conn.putheader("Content-Length", str(length))
            conn.putheader("Accept", "application/json")
            for key, value in (extra or {}).items():
                conn.putheader(key, value)
            conn.endheaders()
            try:
                conn.send(preamble)
                while chunk := fh.read(READ_SIZE):
                    conn.send(chunk)
                conn.send(epilogue)
            except OSError as exc:  # the server answered early: show its answer
                raise RuntimeError(f"upload of {filename}: {exc}: {_early_answer(conn)}") from exc
            resp = conn.getresponse()
            body = resp.read()
            elapsed = time.perf_counter() - started
    finally:
        conn.close()
    if resp.status != 201:
        raise RuntimeError(f"upload of {filename}: {resp.status} {body[:500]!r}")
    return elapsed, json.loads(body), parse_timings(resp.getheader("X-Bench-Timings"))


def _early_answer(conn: http.client.HTTPConnection) -> str:
    try:
        resp = conn.getresponse()
        return f"{resp.status} {resp.read(500)!r}"
    except Exception as exc:  # noqa: BLE001 (only for the error message)
        return f"no answer ({exc!r})"


def download(
    port: int, target: str, headers: dict[str, str], buf: bytearray
) -> tuple[float, float, str, dict]:
    """GET `target`, reading the body with 1 MiB reads into `buf` (reused, so no page of
    it is touched for the first time while timed). Returns (seconds to the response
    headers, seconds to the last byte, body sha256, server timings in ms)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.connect()
    try:
        started = time.perf_counter()
        conn.request("GET", target, headers=headers)
        resp = conn.getresponse()
        first = time.perf_counter() - started
        if resp.status != 200:
            raise RuntimeError(f"GET {target}: {resp.status} {resp.read(500)!r}")
        length = int(resp.getheader("Content-Length"))
        if length > len(buf):
            raise RuntimeError(f"GET {target}: {length} bytes, more than expected")
        view, pos = memoryview(buf)[:length], 0
        while pos < length:
            got = resp.readinto(view[pos : pos + READ_SIZE])
            if not got:
                break
            pos += got
        if resp.read(1):
            raise RuntimeError(f"GET {target}: more than Content-Length bytes")
        total = time.perf_counter() - started
    finally:
        conn.close()
    if pos != length:
        raise RuntimeError(f"GET {target}: {pos} of {length} bytes")
    timings = parse_timings(resp.getheader("X-Bench-Timings"))
    return first, total, hashlib.sha256(view).hexdigest(), timings


# --- runs ----------------------------------------------------------------------------------


def label_of(variants: list[str]) -> str:
    return "+".join(variants) if variants else "committed"


def run_uploads(servers: dict[str, Server], token: str, work: Path, args) -> tuple[dict, dict]:
    """Every repetition uploads a freshly built zip and tar.gz (new version, new digest) to
    each server, alternating which server goes first. Returns (results by server and kind,
    the last package of each server and kind: path, sha256, id)."""
    member_size = args.size_mb * MIB // MEMBERS
    blobs = [os.urandom(member_size) for _ in range(MEMBERS)]
    results = {
        label: {
            kind: {"upload_s": [], "openssl_s": [], "memory": [], "server_ms": [], "size": []}
            for kind in KINDS
        }
        for label in servers
    }
    last: dict[str, dict[str, dict]] = {label: {} for label in servers}
    order = list(servers.items())
    for rep in range(args.repeats):
        turn = order[rep % len(order) :] + order[: rep % len(order)]
        for kind in KINDS:
            for label, server in turn:
                index = list(servers).index(label)
                name = f"bench-{kind.replace('.', '')}"
                version = f"1.{rep}.{index}"
                path = work / f"{name}-{version}.{kind}"
                build_package(kind, path, name, version, blobs)
                sha = file_sha256(path)  # also leaves the file in the page cache
                os.sync()  # no writeback of earlier files competes with what is timed
                openssl = [openssl_seconds(path) for _ in range(3)]
                time.sleep(0.2)  # let the worker settle before its idle size is read
                sampler = RssSampler(server.worker_pid)
                sampler.start()
                try:
                    seconds, body, timings = upload(server.port, token, path, path.name)
                finally:
                    memory = sampler.finish()
                if body["package"]["sha256"] != sha:
                    raise AssertionError(f"{path.name}: stored as {body['package']['sha256']}")
                row = results[label][kind]
                row["upload_s"].append(seconds)
                row["openssl_s"].append(openssl)
                row["memory"].append(memory)
                row["server_ms"].append(timings)
                row["size"].append(path.stat().st_size)
                baseline = statistics.median(openssl)
                print(
                    f"  rep {rep + 1} {_config(label, servers)}{kind:<7} "
                    f"upload {seconds * 1000:7.1f} ms  openssl {baseline * 1000:6.1f} ms  "
                    f"ratio {seconds / baseline:5.2f}  +{memory['delta_mb']:.1f} MB RSS  "
                    f"server {_timings_text(timings)}",
                    flush=True,
                )
                if kind in last[label]:
                    last[label][kind]["path"].unlink()
                last[label][kind] = {"path": path, "sha256": sha, "id": body["id"]}
    return results, last


def _config(label: str, servers: dict) -> str:
    return f"{label:<{max(len(x) for x in servers)}}  " if len(servers) > 1 else ""


def run_downloads(servers: dict[str, Server], token: str, last: dict, count: int) -> dict:
    """App download and bare send_file of the same bytes, alternating (and alternating
    kinds and servers), after one untimed warm-up of each."""
    auth = {"Authorization": f"Bearer {token}"}
    sizes = [p["path"].stat().st_size for packages in last.values() for p in packages.values()]
    buf = bytearray(max(sizes))
    times = {
        label: {
            kind: {side: {"first_s": [], "total_s": [], "server_ms": []} for side in ("app", "raw")}
            for kind in KINDS
        }
        for label in servers
    }
    os.sync()
    samplers = {label: RssSampler(server.worker_pid) for label, server in servers.items()}
    for sampler in samplers.values():
        sampler.start()
    try:
        for rep in range(count + 1):
            for kind in KINDS:
                for label, server in servers.items():
                    package = last[label][kind]
                    targets = {
                        "app": (f"/api/v1/modules/{package['id']}/package", auth),
                        "raw": (f"/bench/raw/{package['path'].name}", {}),
                    }
                    for side, (target, headers) in targets.items():
                        first, total, sha, timings = download(server.port, target, headers, buf)
                        if sha != package["sha256"]:
                            raise AssertionError(f"GET {target}: sha256 {sha}")
                        if rep:
                            row = times[label][kind][side]
                            row["first_s"].append(first)
                            row["total_s"].append(total)
                            row["server_ms"].append(timings.get("app"))
    finally:
        memory = {label: sampler.finish() for label, sampler in samplers.items()}
    for kind in KINDS:
        for label in servers:
            app, raw = times[label][kind]["app"], times[label][kind]["raw"]
            print(
                f"  {_config(label, servers)}{kind:<7} app "
                f"{statistics.median(app['total_s']) * 1000:6.1f} ms (headers "
                f"{statistics.median(app['first_s']) * 1000:5.1f} ms, in the view "
                f"{statistics.median(app['server_ms']):4.1f} ms)   send_file "
                f"{statistics.median(raw['total_s']) * 1000:6.1f} ms (headers "
                f"{statistics.median(raw['first_s']) * 1000:5.1f} ms)",
                flush=True,
            )
    # The worker's RSS is sampled over all of its downloads, both kinds.
    return {
        label: {kind: {**times[label][kind], "memory": memory[label]} for kind in KINDS}
        for label in servers
    }


def run_profiles(
    servers: dict[str, Server], token: str, work: Path, profile_dir: Path, size_mb: int
) -> None:
    """One more upload of each kind and its download per server, under cProfile."""
    import pstats

    blobs = [os.urandom(size_mb * MIB // MEMBERS) for _ in range(MEMBERS)]
    auth = {"Authorization": f"Bearer {token}"}
    for index, server in enumerate(servers.values()):
        for kind in KINDS:
            short = kind.replace(".", "")
            path = work / f"bench-{short}-9.0.{index}.{kind}"
            build_package(kind, path, f"bench-{short}", f"9.0.{index}", blobs)
            tag = {"X-Bench-Profile": f"{index}-upload-{short}"}
            _s, body, _t = upload(server.port, token, path, path.name, tag)
            buf = bytearray(path.stat().st_size)
            headers = {**auth, "X-Bench-Profile": f"{index}-download-{short}"}
            download(server.port, f"/api/v1/modules/{body['id']}/package", headers, buf)
            path.unlink()
    labels = list(servers)
    for stats_file in sorted(profile_dir.glob("*.prof")):
        index, what = stats_file.stem.split("-", 1)
        print(f"\ncProfile of {what} in the worker of {labels[int(index)]} (top 15, own time):")
        out = io.StringIO()
        pstats.Stats(str(stats_file), stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue().split("\n", 4)[-1].rstrip())


def _timings_text(timings: dict[str, float]) -> str:
    return " ".join(f"{step} {ms:.0f}" for step, ms in timings.items())


# --- proposed app changes (measured with --variants; portal/ is not edited here) -----------


def _propose_hash_thread() -> None:
    """Hash each piece in a helper thread while the worker writes it and parses the next.

    hashlib and file writes release the GIL, so on a second core the SHA256 (as long as
    `openssl dgst` itself) leaves the request's critical path. At most one piece (1 MiB)
    waits to be hashed. portal/uploads.py, HashingUpload:

        _HASHERS = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="sha256")

        def __init__(...):
            ...
            self._hashing = None  # the Future of the last piece's update

        def write(self, data: bytes) -> int:
            self.size += len(data)
            if self.size > self.max_bytes:
                ...  # as now
            if self._hashing is not None:
                self._hashing.result()  # pieces are hashed in order, one at a time
            self._hashing = _HASHERS.submit(self._hash.update, data)
            return self._file.write(data)

        @property
        def sha256(self) -> str:
            if self._hashing is not None:
                self._hashing.result()
                self._hashing = None
            return self._hash.hexdigest()

    (close() should also wait for a pending piece before the file goes away.)
    """
    import concurrent.futures

    import portal.http.uploads as uploads
    from portal.services.errors import TooLarge

    hashers = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="sha256")

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.max_bytes:
            self.close()
            limit_mb = self.max_bytes // (1024 * 1024)
            raise TooLarge(f"The package is larger than {limit_mb} MB.")
        pending = self.__dict__.get("_hashing")
        if pending is not None:
            pending.result()
        self._hashing = hashers.submit(self._hash.update, data)
        return self._file.write(data)

    def sha256(self) -> str:
        pending = self.__dict__.pop("_hashing", None)
        if pending is not None:
            pending.result()
        return self._hash.hexdigest()

    close = uploads.HashingUpload.close

    def close_after_hashing(self) -> None:
        pending = self.__dict__.pop("_hashing", None)
        if pending is not None:
            pending.exception()  # wait; its error, if any, no longer matters
        close(self)

    uploads.HashingUpload.write = write
    uploads.HashingUpload.sha256 = property(sha256)
    uploads.HashingUpload.close = close_after_hashing


def _propose_tar_bufsize() -> None:
    """Let tarfile read the gunzipped stream 256 KiB at a time, not 10 KiB.

    tarfile's stream mode ("r|") reads its fileobj in bufsize pieces (default 10,240
    bytes). _GunzipStream.read(n) then inflates at most n bytes out of a 1 MiB input
    piece and keeps the rest as `unconsumed_tail`, a fresh copy of up to 1 MiB on each of
    ~100 calls per input piece: about 50 MB copied per MB of package. portal/packages.py,
    in _read_tar_gz:

        # Well under TAR_HEADER_SLACK: tarfile may read one bufsize past a header.
        with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8",
                          bufsize=256 * 1024) as tf:
    """
    import tarfile

    import portal.packages as packages

    real_open = tarfile.open

    class _Tarfile:  # only packages.py sees this stand-in for the tarfile module
        def __getattr__(self, name):
            return getattr(tarfile, name)

        @staticmethod
        def open(*args, **kwargs):
            kwargs.setdefault("bufsize", 256 * 1024)
            return real_open(*args, **kwargs)

    packages.tarfile = _Tarfile()


def _propose_lean_download() -> None:
    """Read only the two columns a download needs.

    catalog.get_release loads the whole release (manifest and scan report JSON, the
    publisher joined) plus a second query for its dependencies (lazy="selectin"), none
    of which a download uses. portal/services/publishing.py:

        def package_path(module_id: int, *, actor: User):
            # (row with package_sha256 and package_filename, path). Raises NotFound.
            release = db.session.execute(
                sa.select(ModuleRelease.package_sha256, ModuleRelease.package_filename)
                .where(ModuleRelease.id == module_id, catalog.visibility_clause(actor))
            ).first()
            if release is None:
                raise NotFound("No such module.")
            ...  # the rest as now
    """
    import sqlalchemy as sa

    import portal.services.publishing.releases as publishing
    from portal.extensions import db
    from portal.models import ModuleRelease
    from portal.services.catalog import queries as catalog
    from portal.services.errors import NotFound

    def package_path(module_id: int, *, actor):
        release = db.session.execute(
            sa.select(ModuleRelease.package_sha256, ModuleRelease.package_filename).where(
                ModuleRelease.id == module_id, catalog.visibility_clause(actor)
            )
        ).first()
        if release is None:
            raise NotFound("No such module.")
        if not release.package_sha256:
            raise NotFound("This release has no package.")
        path = publishing.package_store().path_for(release.package_sha256)
        if not path.is_file():
            raise NotFound("The package file is missing.")
        return release, path

    publishing.package_path = package_path


PROPOSALS: dict[str, object] = {
    "hash-thread": _propose_hash_thread,
    "tar-bufsize": _propose_tar_bufsize,
    "lean-download": _propose_lean_download,
}


def apply_proposals(names: list[str]) -> None:
    """Patch the named proposals into portal/ (in the gunicorn worker, before create_app)."""
    for name in names:
        if name not in PROPOSALS:
            raise SystemExit(f"no such proposal {name!r}; known: {', '.join(PROPOSALS)}")
        PROPOSALS[name]()


# --- report --------------------------------------------------------------------------------


def _ms(values: list[float]) -> dict:
    return {
        "runs_ms": [round(v * 1000, 2) for v in values],
        "best_ms": round(min(values) * 1000, 2),
        "median_ms": round(statistics.median(values) * 1000, 2),
    }


def summarize_upload(row: dict) -> dict:
    upload_s, openssl_runs = row["upload_s"], row["openssl_s"]
    # Each upload is paired with the median of the 3 openssl runs on its file, timed just
    # before it, so both sides of a ratio saw about the same machine load.
    baselines = [statistics.median(runs) for runs in openssl_runs]
    ratios = [u / o for u, o in zip(upload_s, baselines, strict=True)]
    steps = sorted({step for t in row["server_ms"] for step in t})
    return {
        "size_bytes": row["size"],
        "upload": _ms(upload_s),
        "openssl": _ms(baselines),
        "openssl_runs_ms": [[round(v * 1000, 2) for v in runs] for runs in openssl_runs],
        "ratio": {
            "runs": [round(r, 3) for r in ratios],
            "best": round(min(ratios), 3),
            "median": round(statistics.median(ratios), 3),
        },
        "memory": {
            "max_delta_mb": max(m["delta_mb"] for m in row["memory"]),
            "max_hwm_delta_mb": max((m["hwm_delta_mb"] or 0) for m in row["memory"]),
            "runs": row["memory"],
        },
        "server_median_ms": {
            step: round(statistics.median(t.get(step, 0.0) for t in row["server_ms"]), 2)
            for step in steps
        },
    }


def summarize_download(row: dict) -> dict:
    app, raw = row["app"], row["raw"]
    ratios = [a / r for a, r in zip(app["total_s"], raw["total_s"], strict=True)]
    return {
        "app": {
            "total": _ms(app["total_s"]),
            "headers": _ms(app["first_s"]),
            "view_median_ms": statistics.median(app["server_ms"]),
        },
        "send_file": {"total": _ms(raw["total_s"]), "headers": _ms(raw["first_s"])},
        # Each app download is paired with the send_file right after it.
        "ratio": {
            "runs": [round(r, 3) for r in ratios],
            "best": round(min(ratios), 3),
            "median": round(statistics.median(ratios), 3),
        },
        "memory": row["memory"],
    }


def verdicts(upload: dict, download: dict) -> dict[str, bool]:
    return {
        "upload zip <= 4x openssl (median)": upload["zip"]["ratio"]["median"]
        <= TARGET_UPLOAD_RATIO,
        "worker RSS delta < 16 MB (every upload)": all(
            max(u["memory"]["max_delta_mb"], u["memory"]["max_hwm_delta_mb"]) < TARGET_MEMORY_MB
            for u in upload.values()
        ),
        "download <= 1.25x send_file (median)": all(
            d["ratio"]["median"] <= TARGET_DOWNLOAD_RATIO for d in download.values()
        ),
        "download headers <= 20 ms (median)": all(
            d["app"]["headers"]["median_ms"] <= TARGET_FIRST_BYTE_MS for d in download.values()
        ),
    }


def print_summary(result: dict) -> None:
    print()
    print(
        f"Upload benchmark: {result['size_mb']} MiB packages, gunicorn 1 sync worker per "
        f"configuration, {result['database']},"
    )
    print(
        f"  {result['cpus']} CPUs, Python {result['python']}, {result['date']}, 1-minute "
        f"load average {result['loadavg_1m'][0]:.1f} before, {result['loadavg_1m'][1]:.1f} after"
    )
    configs = result["configs"]
    width = max(len(label) for label in configs) + 9
    print()
    print(
        f"  {'upload':<{width}}{'best ms':>9}{'median':>9}{'openssl':>9}{'ratio':>7}"
        f"{'median':>8}{'RSS +MB':>9}{'HWM +MB':>9}   server median ms"
    )
    for label, config in configs.items():
        for kind, row in config["upload"].items():
            print(
                f"  {label + ' ' + kind:<{width}}{row['upload']['best_ms']:>9.1f}"
                f"{row['upload']['median_ms']:>9.1f}{row['openssl']['median_ms']:>9.1f}"
                f"{row['ratio']['best']:>7.2f}{row['ratio']['median']:>8.2f}"
                f"{row['memory']['max_delta_mb']:>9.1f}{row['memory']['max_hwm_delta_mb']:>9.1f}"
                f"   {_timings_text(row['server_median_ms'])}"
            )
    print()
    print(
        f"  {'download':<{width}}{'app ms':>8}{'headers':>9}{'view':>7}{'send_file':>11}"
        f"{'headers':>9}{'ratio':>7}{'best':>7}{'RSS +MB':>9}"
    )
    for label, config in configs.items():
        for kind, row in config["download"].items():
            print(
                f"  {label + ' ' + kind:<{width}}{row['app']['total']['median_ms']:>8.1f}"
                f"{row['app']['headers']['median_ms']:>9.2f}"
                f"{row['app']['view_median_ms']:>7.2f}"
                f"{row['send_file']['total']['median_ms']:>11.1f}"
                f"{row['send_file']['headers']['median_ms']:>9.2f}"
                f"{row['ratio']['median']:>7.2f}{row['ratio']['best']:>7.2f}"
                f"{row['memory']['delta_mb']:>9.1f}"
            )
    for label, config in configs.items():
        print()
        for target, ok in config["verdicts"].items():
            print(f"  {label}: target {target}: {'PASS' if ok else 'FAIL'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=DEFAULT_SERVER,
        help="PostgreSQL server (a fresh database is created on it), or 'sqlite'",
    )
    parser.add_argument("--size-mb", type=int, default=50, help="random data per package, MiB")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--downloads", type=int, default=DOWNLOADS)
    parser.add_argument(
        "--variants",
        action="append",
        metavar="NAME[,NAME...]",
        help="a configuration: proposed app changes to patch in (comma-separated; '' for "
        "none). Repeat it to compare configurations in one run, each on its own gunicorn, "
        f"uploads and downloads alternating between them. Known: {', '.join(PROPOSALS)}",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, cProfile one more upload of each kind and its download (top 15)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.size_mb + 1 > MAX_MODULE_SIZE_MB:
        parser.error(f"--size-mb must leave room under MAX_MODULE_SIZE_MB={MAX_MODULE_SIZE_MB}")
    configs = [[v for v in spec.split(",") if v] for spec in (args.variants or [""])]
    for variants in configs:
        unknown = [v for v in variants if v not in PROPOSALS]
        if unknown:
            parser.error(f"unknown variants {unknown}; known: {', '.join(PROPOSALS)}")
    labels = [label_of(variants) for variants in configs]
    if len(set(labels)) != len(labels):
        parser.error("the same configuration twice")

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-upload-")))
        work, storage, instance, cwd = (tmp / d for d in ("packages", "store", "instance", "cwd"))
        for folder in (work, storage, instance, cwd):
            folder.mkdir()
        url, backend = fresh_database(args.database_url, stack, tmp)
        token = prepare_database(url, storage)

        servers: dict[str, Server] = {}
        for label, variants in zip(labels, configs, strict=True):
            env = server_env(url, storage, instance, work, variants)
            if args.profile:
                (tmp / "profiles").mkdir(exist_ok=True)
                env["BENCH_PROFILE_DIR"] = str(tmp / "profiles")
            servers[label] = Server(env, cwd)
            stack.callback(servers[label].stop)
        for index, server in enumerate(servers.values()):
            server.wait_ready()
            # Warm-up (untimed): the first request of each kind imports and connects lazily.
            for kind in KINDS:
                warm = work / f"warm-up.{kind}"
                name = f"warm-{kind.replace('.', '')}"
                build_package(kind, warm, name, f"0.0.{index}", [b"x" * 1024])
                upload(server.port, token, warm, warm.name)
                warm.unlink()

        load_before = os.getloadavg()
        print(f"uploads ({args.repeats} x {args.size_mb} MiB per kind):", flush=True)
        uploads, last = run_uploads(servers, token, work, args)
        print(f"downloads ({args.downloads} each, alternating):", flush=True)
        downloads = run_downloads(servers, token, last, args.downloads)
        load_after = os.getloadavg()
        left = sorted(p.name for p in (storage / "tmp").glob("*"))
        if left:
            raise AssertionError(f"temp files left in the store: {left}")
        if args.profile:
            run_profiles(servers, token, work, tmp / "profiles", args.size_mb)

        result = {
            "benchmark": "upload",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": backend,
            "size_mb": args.size_mb,
            "members": MEMBERS,
            "repeats": args.repeats,
            "downloads": args.downloads,
            "cpus": os.cpu_count(),
            # Other work on the machine skews every figure: the 1-minute load average
            # before and after the timed part (2 CPUs: above 2 means contention).
            "loadavg_1m": [round(load_before[0], 2), round(load_after[0], 2)],
            "python": platform.python_version(),
            "gunicorn": metadata.version("gunicorn"),
            "werkzeug": metadata.version("werkzeug"),
            "flask": metadata.version("flask"),
            "openssl": subprocess.run(
                ["openssl", "version"], capture_output=True, text=True
            ).stdout.strip(),
            "targets": {
                "upload_ratio_zip": TARGET_UPLOAD_RATIO,
                "memory_mb": TARGET_MEMORY_MB,
                "download_ratio": TARGET_DOWNLOAD_RATIO,
                "first_byte_ms": TARGET_FIRST_BYTE_MS,
            },
            "configs": {},
        }
        for label, variants in zip(labels, configs, strict=True):
            up = {kind: summarize_upload(row) for kind, row in uploads[label].items()}
            down = {kind: summarize_download(row) for kind, row in downloads[label].items()}
            result["configs"][label] = {
                "variants": variants,
                "upload": up,
                "download": down,
                "verdicts": verdicts(up, down),
            }
    print_summary(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # One entry per database and set of configurations, so runs are kept side by side.
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    key = backend if labels == ["committed"] else f"{backend}: {' vs '.join(labels)}"
    results[key] = result
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"  written to {args.out} ({key})")
    return 0


def _exit_on_sigterm(signum, _frame) -> None:
    raise SystemExit(128 + signum)  # unwinds the ExitStack: gunicorn, database, temp files


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.exit(main())
