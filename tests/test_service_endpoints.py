"""/health and /info."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal import create_app
from portal.config import TestConfig
from portal.events import record_event
from portal.extensions import db
from portal.models import Event, ServiceState
from portal.models.base import utcnow
from portal.services.platform.service_health import WORKER_STATE_KEY, record_worker_heartbeat

# /health reads through a connection of its own, so what a test writes must be committed.
pytestmark = pytest.mark.truncate


def _beat(app, seconds_ago: float = 0) -> None:
    with app.app_context():
        record_worker_heartbeat()
        if seconds_ago:
            state = db.session.get(ServiceState, WORKER_STATE_KEY)
            state.value = {
                **state.value,
                "at": (utcnow() - timedelta(seconds=seconds_ago)).isoformat(),
            }
            db.session.commit()
        db.session.remove()


def test_health_reports_every_check(app, client):
    _beat(app)
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    assert body["status"] == "healthy"
    assert body["checks"]["worker"]["status"] == "ok"
    del body["checks"]["worker"]
    assert body["checks"] == {
        "database": "ok",
        "redis": "disabled",
        "storage": "ok",
        "service_registry": "disabled",
        "relay": {"status": "disabled"},
    }


@pytest.mark.parametrize(("seconds_ago", "status"), [(None, "missing"), (3600, "stale")])
def test_health_is_degraded_without_a_live_worker(app, client, seconds_ago, status):
    if seconds_ago is not None:
        _beat(app, seconds_ago)
    body = client.get("/health").get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["worker"]["status"] == status


def test_health_is_degraded_when_the_relay_lags(app, tmp_path, database_url, redis_url):
    app = create_app(
        TestConfig(
            database_url,
            REDIS_URL=redis_url,
            RELAY_LAG_DEGRADED_SECONDS=60,
            MODULE_STORAGE_PATH=str(tmp_path),
            INSTANCE_PATH=str(tmp_path),
        )
    )
    _beat(app)
    with app.app_context():
        record_event("module.registered", actor=None, company="acme")
        db.session.execute(sa.update(Event).values(occurred_at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
        db.session.remove()
    body = app.test_client().get("/health").get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["relay"]["status"] == "lagging"
    assert body["checks"]["relay"]["lag_seconds"] >= 300


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers (a hung Redis or database)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for conn in accepted:
        conn.close()
    server.close()


def test_health_answers_within_a_second_when_redis_hangs(
    app, tmp_path, database_url, silent_server
):
    app = create_app(
        TestConfig(
            database_url,
            REDIS_URL=f"redis://127.0.0.1:{silent_server}/0",
            MODULE_STORAGE_PATH=str(tmp_path),
            INSTANCE_PATH=str(tmp_path),
        )
    )
    started = time.monotonic()
    resp = app.test_client().get("/health")
    took = time.monotonic() - started
    assert took < 1.5, took  # the probe deadline is 0.8 s; the rest is the request itself
    assert resp.status_code == 200
    assert resp.get_json()["checks"]["redis"] == "timeout"
    assert resp.get_json()["status"] == "degraded"


def test_health_answers_within_a_second_when_the_database_hangs(tmp_path, silent_server):
    app = create_app(
        TestConfig(
            f"postgresql://postgres@127.0.0.1:{silent_server}/x",
            MODULE_STORAGE_PATH=str(tmp_path),
            INSTANCE_PATH=str(tmp_path),
        )
    )
    client = app.test_client()
    started = time.monotonic()
    resp = client.get("/health")
    took = time.monotonic() - started
    assert took < 1.5, took
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["database"] == "timeout"
    assert client.get("/health/ready").status_code == 503
    assert client.get("/health/live").status_code == 200


def test_live_and_ready_answer_200_when_the_service_can_serve(client):
    assert client.get("/health/live").get_json() == {"status": "alive"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"


def test_health_answers_503_and_names_the_database_when_it_is_unreachable(tmp_path):
    app = create_app(
        TestConfig(
            "postgresql://postgres@127.0.0.1:1/nowhere",
            MODULE_STORAGE_PATH=str(tmp_path),
            INSTANCE_PATH=str(tmp_path),
        )
    )
    resp = app.test_client().get("/health")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"] == "unavailable"


def test_health_says_redis_is_unavailable_without_failing(app, tmp_path, database_url):
    app = create_app(
        TestConfig(
            database_url,
            REDIS_URL="redis://127.0.0.1:1/0",
            MODULE_STORAGE_PATH=str(tmp_path),
            INSTANCE_PATH=str(tmp_path),
        )
    )
    resp = app.test_client().get("/health")
    assert resp.status_code == 200
    assert resp.get_json()["checks"]["redis"] == "unavailable"


def test_health_reports_redis_ok_when_it_answers(app, tmp_path, database_url, redis_url):
    app = create_app(
        TestConfig(
            database_url,
            REDIS_URL=redis_url,
            MODULE_STORAGE_PATH=str(tmp_path),
            INSTANCE_PATH=str(tmp_path),
        )
    )
    assert app.test_client().get("/health").get_json()["checks"]["redis"] == "ok"


def test_info_names_the_service(client):
    body = client.get("/info").get_json()
    assert body["name"] == "module-registry-service"
    assert body["api"] == "/api/v1" and body["docs"] == "/docs"
    assert body["version"] and body["environment"] == "test"


@pytest.mark.parametrize("path", ["/health", "/info"])
def test_service_endpoints_need_no_sign_in(client, path):
    assert client.get(path).status_code == 200
