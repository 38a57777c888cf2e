"""Package upload and download through the app under gunicorn, over real HTTP.

What we measure, on ~50 MB packages of incompressible data (a zip and a tar.gz:
module.yaml plus 10 x 5 MiB random members, rebuilt with a new version each time),
served by gunicorn (1 sync worker) running `bench_app()` below:
- upload: a multipart POST /api/v1/modules/, from the first byte sent to the response
  read (body parsed, hashed and written as it arrives, package inspected, stored, row and
  event committed), against `openssl dgst -sha256` of the same file timed just before.
  Target for the zip: at most 4x (median).
- memory: the worker's peak RSS above its idle size during each upload (VmRSS sampled
  every 5 ms, and the kernel's VmHWM). Target: under 16 MB.
- download: GET /api/v1/modules/<id>/package (bearer token) against a bare Flask
  `send_file` of the same bytes on the same server (GET /bench/raw/<file>), alternating:
  time to the headers and to the last byte. Target: at most 1.25x (median), headers
  within 20 ms. The downloaded bytes' SHA256 is checked against the upload's.

    python -m bench.upload [--size-mb 50] [--repeats 3] [--downloads 5] [--profile]
        [--database-url URL | sqlite] [--quick]
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import statistics
import subprocess
import tarfile
import tempfile
import time
import uuid
import zipfile
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path

from bench import harness

MIB = 1024 * 1024
READ_SIZE = MIB
MEMBERS = 10
MAX_MODULE_SIZE_MB = 60
KINDS = ("zip", "tar.gz")
QUICK = {"size_mb": 2, "repeats": 1, "downloads": 1}

TARGET_UPLOAD_RATIO = 4.0  # zip, median
TARGET_MEMORY_MB = 16.0
TARGET_DOWNLOAD_RATIO = 1.25
TARGET_FIRST_BYTE_MS = 20.0


# --- the app gunicorn serves ---------------------------------------------------------------


def bench_app():
    """The registry app exactly as wsgi.py builds it (configured from the environment
    main() sets), plus `GET /bench/raw/<name>`: a bare Flask `send_file` of a file in
    $BENCH_RAW_DIR, the ceiling for downloads. X-Bench-Timings says where the worker
    spent a request: "parse" (reading the multipart body, which hashes and writes the
    file part as it arrives), "inspect" (inspect_package), "store" (PackageStore.commit,
    the fsyncs and rename), "app" (the whole request). Wrapping them costs microseconds."""
    from flask import abort, send_file
    from werkzeug.security import safe_join

    import portal.api.publishing as api
    import portal.services.publishing.submissions as submissions
    from portal import create_app
    from portal.config import Config
    from portal.services.publishing.storage import PackageStore

    # Where the names are looked up when a request runs (the reorganised portal/).
    api.submission_from_request = harness.timed("parse", api.submission_from_request)
    submissions.inspect_package = harness.timed("inspect", submissions.inspect_package)
    PackageStore.commit = harness.timed("store", PackageStore.commit)
    app = harness.instrument(create_app(Config()))
    raw_dir = os.environ["BENCH_RAW_DIR"]

    @app.get("/bench/raw/<name>")
    def bench_raw(name: str):
        path = safe_join(raw_dir, name)
        if path is None or not os.path.isfile(path):
            abort(404)
        return send_file(path, mimetype="application/octet-stream")

    return app


def prepare_database(url: str) -> str:
    """Migrate, add a company and a developer; return the developer's API token."""
    from portal.services.accounts import users

    with harness.migrated_app(url):
        users.create_company("bench", "Bench")
        user = users.create_user("dev@bench.test", uuid.uuid4().hex, "developer", "bench")
        _token, plain = users.create_api_token(user, "upload benchmark")
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


# --- HTTP client ---------------------------------------------------------------------------


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
    return elapsed, json.loads(body), harness.parse_timings(resp.getheader("X-Bench-Timings"))


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
    timings = harness.parse_timings(resp.getheader("X-Bench-Timings"))
    return first, total, hashlib.sha256(view).hexdigest(), timings


# --- the timed runs ------------------------------------------------------------------------


class Run:
    """One run's server, token and folder; the packages uploaded last (for downloads)."""

    def __init__(self, server: harness.Gunicorn, token: str, work: Path, size_mb: int):
        self.server, self.token, self.work = server, token, work
        [self.worker_pid] = server.worker_pids()  # one sync worker: its memory is ours
        self.blobs = [os.urandom(size_mb * MIB // MEMBERS) for _ in range(MEMBERS)]
        self.last: dict[str, dict] = {}

    def warm_up(self) -> None:
        """The first request of each kind imports and connects lazily (untimed)."""
        for kind in KINDS:
            path = self.work / f"warm-up.{kind}"
            build_package(kind, path, f"warm-{kind.replace('.', '')}", "0.0.1", [b"x" * 1024])
            upload(self.server.port, self.token, path, path.name)
            path.unlink()

    def upload_once(self, kind: str) -> dict:
        """A freshly built package (new version, new digest), openssl on it 3 times, then
        the upload, with the worker's memory sampled."""
        name = f"bench-{kind.replace('.', '')}"
        rep = self.last[kind]["rep"] + 1 if kind in self.last else 0
        version = f"1.{rep}.0"
        path = self.work / f"{name}-{version}.{kind}"
        build_package(kind, path, name, version, self.blobs)
        sha = file_sha256(path)  # also leaves the file in the page cache
        os.sync()  # no writeback of earlier files competes with what is timed
        openssl = statistics.median(openssl_seconds(path) for _ in range(3))
        time.sleep(0.2)  # let the worker settle before its idle size is read
        with harness.PeakSampler(self.worker_pid, interval=0.005) as sampler:
            seconds, body, timings = upload(self.server.port, self.token, path, path.name)
        if body["package"]["sha256"] != sha:
            raise AssertionError(f"{path.name}: stored as {body['package']['sha256']}")
        if kind in self.last:
            self.last[kind]["path"].unlink()
        self.last[kind] = {"path": path, "sha256": sha, "id": body["id"], "rep": rep}
        row = {"upload_s": seconds, "openssl_s": openssl, "memory": sampler.result}
        print(
            f"  {kind:<7} upload {seconds * 1000:7.1f} ms  openssl {openssl * 1000:6.1f} ms  "
            f"ratio {seconds / openssl:5.2f}  +{sampler.result['delta_mb']:.1f} MB RSS  "
            f"server {_timings_text(timings)}",
            flush=True,
        )
        return {**row, "server_ms": timings, "size": path.stat().st_size}

    def download_once(self, kind: str, side: str, buf: bytearray) -> dict:
        """The app's download ("app") or the bare send_file ("raw") of the last package."""
        package = self.last[kind]
        if side == "app":
            target = f"/api/v1/modules/{package['id']}/package"
            headers = {"Authorization": f"Bearer {self.token}"}
        else:
            target, headers = f"/bench/raw/{package['path'].name}", {}
        first, total, sha, timings = download(self.server.port, target, headers, buf)
        if sha != package["sha256"]:
            raise AssertionError(f"GET {target}: sha256 {sha}")
        return {"first_s": first, "total_s": total, "view_ms": timings.get("app")}

    def downloads(self, count: int) -> dict:
        """App and send_file of the same bytes alternating (kinds too), after an untimed
        warm-up of each; the worker's RSS is sampled over all of them."""
        buf = bytearray(max(p["path"].stat().st_size for p in self.last.values()))
        contenders = {
            f"{kind} {side}": (lambda k=kind, s=side: self.download_once(k, s, buf))
            for kind in KINDS
            for side in ("app", "raw")
        }
        os.sync()
        with harness.PeakSampler(self.worker_pid, interval=0.005) as sampler:
            runs = harness.alternate(contenders, count + 1)
        return {name: rows[1:] for name, rows in runs.items()} | {"memory": sampler.result}

    def profiles(self, profile_dir: Path) -> None:
        """One more upload of each kind and its download under cProfile in the worker."""
        for kind in KINDS:
            short = kind.replace(".", "")
            path = self.work / f"bench-{short}-9.0.0.{kind}"
            build_package(kind, path, f"bench-{short}", "9.0.0", self.blobs)
            tag = {"X-Bench-Profile": f"upload-{short}"}
            _s, body, _t = upload(self.server.port, self.token, path, path.name, tag)
            headers = {
                "Authorization": f"Bearer {self.token}",
                "X-Bench-Profile": f"download-{short}",
            }
            target = f"/api/v1/modules/{body['id']}/package"
            download(self.server.port, target, headers, bytearray(path.stat().st_size))
            path.unlink()
        for stats in sorted(profile_dir.glob("*.prof")):
            harness.print_profile(stats, "tottime", 15, f"cProfile of {stats.stem} in the worker")


def _timings_text(timings: dict[str, float]) -> str:
    return " ".join(f"{step} {ms:.0f}" for step, ms in timings.items())


# --- report --------------------------------------------------------------------------------


def summarize_upload(rows: list[dict]) -> dict:
    """Each upload is paired with the median of the 3 openssl runs on its file, timed
    just before it, so both sides of a ratio saw about the same machine load."""
    steps = sorted({step for row in rows for step in row["server_ms"]})
    memory = [row["memory"] for row in rows]
    return {
        "size_bytes": [row["size"] for row in rows],
        "upload_ms": harness.spread([r["upload_s"] for r in rows], 1000, 2),
        "openssl_ms": harness.spread([r["openssl_s"] for r in rows], 1000, 2),
        "ratio": harness.spread([r["upload_s"] / r["openssl_s"] for r in rows], digits=3),
        "memory": {
            "max_delta_mb": max(m["delta_mb"] for m in memory),
            "max_hwm_delta_mb": max((m["hwm_delta_mb"] or 0) for m in memory),
            "runs": memory,
        },
        "server_median_ms": {
            step: round(statistics.median(r["server_ms"].get(step, 0.0) for r in rows), 2)
            for step in steps
        },
    }


def summarize_download(app: list[dict], raw: list[dict]) -> dict:
    """Each app download is paired with the send_file right after it."""
    return {
        "app_ms": harness.spread([r["total_s"] for r in app], 1000, 2),
        "app_headers_ms": harness.spread([r["first_s"] for r in app], 1000, 2),
        "view_median_ms": statistics.median(r["view_ms"] for r in app),
        "send_file_ms": harness.spread([r["total_s"] for r in raw], 1000, 2),
        "send_file_headers_ms": harness.spread([r["first_s"] for r in raw], 1000, 2),
        "ratio": harness.spread(
            [a["total_s"] / r["total_s"] for a, r in zip(app, raw, strict=True)], digits=3
        ),
    }


def verdicts(upload: dict, download: dict) -> dict[str, bool]:
    worst_memory = max(
        max(u["memory"]["max_delta_mb"], u["memory"]["max_hwm_delta_mb"]) for u in upload.values()
    )
    return {
        "upload zip <= 4x openssl (median)": upload["zip"]["ratio"]["median"]
        <= TARGET_UPLOAD_RATIO,
        "worker RSS delta < 16 MB (every upload)": worst_memory < TARGET_MEMORY_MB,
        "download <= 1.25x send_file (median)": all(
            d["ratio"]["median"] <= TARGET_DOWNLOAD_RATIO for d in download.values()
        ),
        "download headers <= 20 ms (median)": all(
            d["app_headers_ms"]["median"] <= TARGET_FIRST_BYTE_MS for d in download.values()
        ),
    }


def print_summary(result: dict) -> None:
    load = result["loadavg_1m"]
    print(
        f"\nUpload benchmark: {result['size_mb']} MiB packages, gunicorn 1 sync worker, "
        f"{result['database']}, {result['cpus']} CPUs, Python {result['python']}, "
        f"{result['date']}, load {load[0]:.1f} -> {load[1]:.1f}"
    )
    print(
        f"\n  {'upload':<9}{'best ms':>9}{'median':>9}{'openssl':>9}{'ratio':>7}{'median':>8}"
        f"{'RSS +MB':>9}{'HWM +MB':>9}   server median ms"
    )
    for kind, row in result["upload"].items():
        print(
            f"  {kind:<9}{row['upload_ms']['best']:>9.1f}{row['upload_ms']['median']:>9.1f}"
            f"{row['openssl_ms']['median']:>9.1f}{row['ratio']['best']:>7.2f}"
            f"{row['ratio']['median']:>8.2f}{row['memory']['max_delta_mb']:>9.1f}"
            f"{row['memory']['max_hwm_delta_mb']:>9.1f}   "
            f"{_timings_text(row['server_median_ms'])}"
        )
    print(
        f"\n  {'download':<9}{'app ms':>8}{'headers':>9}{'view':>7}{'send_file':>11}"
        f"{'headers':>9}{'ratio':>7}{'best':>7}"
    )
    for kind, row in result["download"].items():
        print(
            f"  {kind:<9}{row['app_ms']['median']:>8.1f}{row['app_headers_ms']['median']:>9.2f}"
            f"{row['view_median_ms']:>7.2f}{row['send_file_ms']['median']:>11.1f}"
            f"{row['send_file_headers_ms']['median']:>9.2f}{row['ratio']['median']:>7.2f}"
            f"{row['ratio']['best']:>7.2f}"
        )
    print(f"  worker RSS over all downloads: +{result['download_memory']['delta_mb']:.1f} MB\n")
    for target, ok in result["verdicts"].items():
        print(f"  target {target}: {'PASS' if ok else 'FAIL'}")


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(__doc__)
    parser.add_argument("--size-mb", type=int, default=50, help="random data per package, MiB")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--downloads", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile one more of each")
    args = harness.parse(parser, argv, QUICK)
    if args.size_mb + 1 > MAX_MODULE_SIZE_MB:
        parser.error(f"--size-mb must leave room under MAX_MODULE_SIZE_MB={MAX_MODULE_SIZE_MB}")

    with ExitStack() as stack:
        # Setup (untimed): database, token, the server, a warm-up upload of each kind.
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-upload-")))
        (tmp / "packages").mkdir()
        url, backend = harness.fresh_database(args.database_url, stack, "bench_upload")
        token = prepare_database(url)
        env = harness.server_env(
            url,
            tmp,
            BENCH_RAW_DIR=str(tmp / "packages"),
            MAX_MODULE_SIZE_MB=str(MAX_MODULE_SIZE_MB),
        )
        if args.profile:
            (tmp / "profiles").mkdir()
            env["BENCH_PROFILE_DIR"] = str(tmp / "profiles")
        server = harness.start_server(stack, "bench.upload:bench_app()", env, "/bench/raw/-")
        run = Run(server, token, tmp / "packages", args.size_mb)
        run.warm_up()

        # Timed: uploads (kinds alternating), then downloads (app and send_file alternating).
        load_before = harness.load_1m()
        print(f"uploads ({args.repeats} x {args.size_mb} MiB per kind):", flush=True)
        contenders = {kind: (lambda k=kind: run.upload_once(k)) for kind in KINDS}
        uploads = harness.alternate(contenders, args.repeats)
        print(f"downloads ({args.downloads} each, alternating):", flush=True)
        downloads = run.downloads(args.downloads)
        left = sorted(p.name for p in (tmp / "store" / "tmp").glob("*"))
        if left:
            raise AssertionError(f"temp files left in the store: {left}")
        result = report(args, backend, load_before, uploads, downloads)
        if args.profile:
            run.profiles(tmp / "profiles")
    print_summary(result)
    harness.write_json(args.out, "upload", backend, result)
    return 0


def report(args, backend: str, load_before: float, uploads: dict, downloads: dict) -> dict:
    up = {kind: summarize_upload(rows) for kind, rows in uploads.items()}
    down = {k: summarize_download(downloads[f"{k} app"], downloads[f"{k} raw"]) for k in KINDS}
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True)
    return harness.run_info(
        "upload",
        load_before,
        database=backend,
        size_mb=args.size_mb,
        members=MEMBERS,
        repeats=args.repeats,
        downloads=args.downloads,
        **{lib: metadata.version(lib) for lib in ("gunicorn", "werkzeug", "flask")},
        openssl=openssl.stdout.strip(),
        targets={
            "upload_ratio_zip": TARGET_UPLOAD_RATIO,
            "memory_mb": TARGET_MEMORY_MB,
            "download_ratio": TARGET_DOWNLOAD_RATIO,
            "first_byte_ms": TARGET_FIRST_BYTE_MS,
        },
        upload=up,
        download=down,
        download_memory=downloads["memory"],
        verdicts=verdicts(up, down),
    )


if __name__ == "__main__":
    harness.main_guard(main)
