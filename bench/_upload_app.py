"""The WSGI app bench/upload.py starts under gunicorn (not a benchmark itself: run_all.py
skips files starting with "_").

It is the registry app exactly as `wsgi.py` builds it (`create_app(Config())`, configured
from the environment bench/upload.py sets), plus:

- `GET /bench/raw/<name>`: a bare Flask `send_file` of a file in $BENCH_RAW_DIR, the
  ceiling for package downloads on the same server;
- with $BENCH_PROFILE_DIR set, cProfile of the requests that ask for it (--profile);
- an `X-Bench-Timings` response header on API requests: where the worker spent the request
  ("parse": reading and parsing the multipart body, which hashes and writes the file part
  as it arrives; "inspect": `inspect_package`; "store": `PackageStore.commit`, the fsyncs
  and rename; "app": the whole request from routing to response). Wrapping three functions
  and two hooks costs microseconds, next to the tens of milliseconds measured.

With $BENCH_VARIANTS set (comma-separated), the proposed app changes of the same names in
bench/upload.py's PROPOSALS are patched in, so they can be measured on the same machine
without editing portal/ (see the README's upload section).
"""

from __future__ import annotations

import functools
import os
import time

import portal.api.modules
from flask import abort, g, request, send_file
from werkzeug.security import safe_join

import portal.services.publishing.submissions
from portal import create_app
from portal.config import Config
from portal.services.publishing.storage import PackageStore

RAW_DIR = os.environ["BENCH_RAW_DIR"]
VARIANTS = [v for v in os.environ.get("BENCH_VARIANTS", "").split(",") if v]


def _timed(step: str, func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            timings = g.setdefault("bench_timings", {})
            timings[step] = timings.get(step, 0.0) + time.perf_counter() - started

    return wrapper


if VARIANTS:
    from upload import apply_proposals  # bench/upload.py, on the path gunicorn was given

    apply_proposals(VARIANTS)

portal.api.modules.submission_from_request = _timed(
    "parse", portal.api.modules.submission_from_request
)
portal.services.publishing.submissions.inspect_package = _timed(
    "inspect", portal.services.publishing.submissions.inspect_package
)
PackageStore.commit = _timed("store", PackageStore.commit)

app = create_app(Config())


@app.before_request
def _start_clock():
    g.bench_started = time.perf_counter()


@app.after_request
def _timings_header(response):
    if request.path.startswith("/api/") and "bench_started" in g:
        timings = dict(g.get("bench_timings", {}))
        timings["app"] = time.perf_counter() - g.bench_started
        response.headers["X-Bench-Timings"] = ";".join(
            f"{step}={seconds * 1000:.2f}" for step, seconds in timings.items()
        )
    return response


PROFILE_DIR = os.environ.get("BENCH_PROFILE_DIR")
if PROFILE_DIR:
    # bench/upload.py --profile: a request with "X-Bench-Profile: <name>" is run under
    # cProfile (the app's part only: a download's bytes are sent by gunicorn afterwards),
    # and its stats are written to $BENCH_PROFILE_DIR/<name>.prof.
    import cProfile

    _inner = app.wsgi_app

    def _profiled(environ, start_response):
        name = environ.get("HTTP_X_BENCH_PROFILE")
        if not name or not name.replace("-", "").isalnum():
            return _inner(environ, start_response)
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            return _inner(environ, start_response)
        finally:
            profiler.disable()
            profiler.dump_stats(os.path.join(PROFILE_DIR, f"{name}.prof"))

    app.wsgi_app = _profiled


@app.get("/bench/raw/<name>")
def bench_raw(name: str):
    path = safe_join(RAW_DIR, name)
    if path is None or not os.path.isfile(path):
        abort(404)
    return send_file(path, mimetype="application/octet-stream")
