"""Drill: PostgreSQL restarts (fast, then a crash) under a bounded mixed load of publishes
and reads through gunicorn. Expected: no 500 at all, a 503 problem+json with Retry-After
while the database is away, every acknowledged write present with its status change and
its event, no partial write, and no package file that no row names."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter

import psycopg
import pytest
import sqlalchemy as sa

from portal import create_app
from portal.config import TestConfig
from portal.extensions import db
from portal.models import Event, ModuleRelease, StatusChange
from tests import helpers
from tests import packaging as pkg
from tests.drills.servers import AppServer, PostgresCluster

WRITERS = 4
READERS = 2
DURATION = 16.0  # seconds of load; restarts at 3 s (fast) and 9 s (immediate)


@pytest.fixture
def cluster():
    cluster = PostgresCluster()
    cluster.start()
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE registry")
    yield cluster
    cluster.destroy()


def _request(url, *, method="GET", headers=None, body=None):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _multipart(data: bytes, filename: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="package"; filename="{filename}"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), boundary


def test_a_postgres_restart_under_load_answers_503_never_500_and_loses_nothing(cluster, tmp_path):
    database_url = cluster.url.rsplit("/", 1)[0] + "/registry"
    storage = tmp_path / "packages"
    app = create_app(
        TestConfig(database_url, MODULE_STORAGE_PATH=str(storage), INSTANCE_PATH=str(tmp_path))
    )
    helpers.migrate_to_head(app)
    with app.app_context():
        people = helpers.make_people()
        db.session.remove()
    token = helpers.bearer(app, people.developer.email)
    server = AppServer(
        {
            "DATABASE_URL": database_url,
            "MODULE_STORAGE_PATH": str(storage),
            "INSTANCE_PATH": str(tmp_path),
            "REDIS_URL": "",
            "ORPHAN_SWEEP_INTERVAL_SECONDS": "100000",
        }
    )
    results: list[tuple[str, int, dict, bytes]] = []
    acknowledged: dict[int, str] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + DURATION

    def writer(w: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            i += 1
            name = f"drill-{w}-{i}"
            if i % 2:
                body = json.dumps({"manifest": pkg.manifest(name, "1.0.0")}).encode()
                headers = {**token, "Content-Type": "application/json"}
            else:
                data = pkg.zip_package(pkg.manifest_yaml(name, "1.0.0"))
                body, boundary = _multipart(data, f"{name}.zip")
                headers = {**token, "Content-Type": f"multipart/form-data; boundary={boundary}"}
            status, resp_headers, raw = _request(
                server.url + "/api/v1/modules/", method="POST", headers=headers, body=body
            )
            with lock:
                results.append(("publish", status, resp_headers, raw))
                if status == 201:
                    acknowledged[json.loads(raw)["id"]] = name

    def reader() -> None:
        while time.monotonic() < deadline:
            status, resp_headers, raw = _request(
                server.url + "/api/v1/modules/?per_page=5", headers=token
            )
            with lock:
                results.append(("list", status, resp_headers, raw))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    threads += [threading.Thread(target=reader) for _ in range(READERS)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(3)
        cluster.restart("fast")
        time.sleep(6)
        cluster.restart("immediate")
        for thread in threads:
            thread.join(timeout=DURATION + 60)
        log = server.output()
    finally:
        server.stop()

    statuses = Counter((kind, status) for kind, status, _h, _b in results)
    print(f"\nPostgreSQL restart drill: {len(results)} requests, by status: {dict(statuses)}")
    print(f"acknowledged publishes: {len(acknowledged)}")
    unavailable = [(h, b) for _k, s, h, b in results if s == 503]
    assert not [s for _k, s, _h, _b in results if s >= 500 and s != 503], statuses
    assert unavailable, "the restarts were never seen: the drill proves nothing"
    for headers, raw in unavailable:
        assert headers.get("Retry-After") and headers["Content-Type"].startswith(
            "application/problem+json"
        ), raw[:300]
        assert json.loads(raw)["status"] == 503
    assert "Internal Server Error" not in log and "Traceback" not in log, log[-3000:]
    assert acknowledged

    with app.app_context():
        db.engine.dispose()
        rows = {r.id: r for r in db.session.execute(sa.select(ModuleRelease)).scalars()}
        for release_id, name in acknowledged.items():
            assert rows[release_id].name == name and rows[release_id].status == "pending"
        changed = set(db.session.execute(sa.select(StatusChange.module_id)).scalars())
        registered = set(
            db.session.execute(
                sa.select(Event.module_id).where(Event.type == "module.registered")
            ).scalars()
        )
        assert set(rows) <= changed and set(rows) <= registered  # no partial write
        named = {r.package_sha256 for r in rows.values() if r.package_sha256}
        db.session.remove()
    stored = {p.name for p in storage.glob("??/??/*")}
    print(f"stored packages: {len(stored)}, named by a row: {len(named)}")
    assert stored == named  # no orphan file
    assert not list((storage / "tmp").glob("*"))
    for name in stored:
        assert hashlib.sha256((storage / name[:2] / name[2:4] / name).read_bytes()).hexdigest()
