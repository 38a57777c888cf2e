"""Registration with the platform's service registry (a real HTTP server in the test that
records calls, goes down and comes back)."""

from __future__ import annotations

import json
import threading
import time

import pytest

import portal
from portal import create_app
from portal.config import TestConfig
from portal.extensions import db
from portal.worker.service_registry import RegistryClient, run_registration
from tests.fake_servers import FakeServer, free_port


@pytest.fixture
def registry():
    server = FakeServer()
    server.routes[("POST", "/api/v1/services/register")] = (200, {"ok": True})
    server.routes[("DELETE", "/api/v1/services/module-registry-service")] = (204, {})
    yield server
    server.stop()


def _app(app, database_url, registry_url):
    return create_app(
        TestConfig(
            database_url,
            SERVICE_REGISTRY_URL=registry_url,
            SERVICE_PUBLIC_URL="http://registry.internal:8005",
            MODULE_STORAGE_PATH=app.config["MODULE_STORAGE_PATH"],
            INSTANCE_PATH=app.config["INSTANCE_PATH"],
        )
    )


def _health(app) -> str:
    return app.test_client().get("/health").get_json()["checks"]["service_registry"]


def _wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _start(app, client, renew=0.2):
    stop = threading.Event()
    thread = threading.Thread(
        target=run_registration, args=(app, stop, client), kwargs={"renew_seconds": renew}
    )
    thread.start()
    return stop, thread


@pytest.mark.truncate
def test_the_worker_registers_renews_and_deregisters_on_a_clean_stop(app, database_url, registry):
    reg_app = _app(app, database_url, registry.url)
    assert _health(reg_app) == "unreachable"  # nothing recorded yet
    stop, thread = _start(reg_app, RegistryClient(reg_app.config))
    assert _wait_for(lambda: _health(reg_app) == "registered")
    assert _wait_for(lambda: sum(1 for c in registry.calls if c[0] == "POST") >= 3)  # renewals
    stop.set()
    thread.join(timeout=10)
    method, path, body = registry.calls[0]
    assert (method, path) == ("POST", "/api/v1/services/register")
    assert json.loads(body) == {
        "name": "module-registry-service",
        "version": portal.__version__,
        "url": "http://registry.internal:8005",
        "health_url": "http://registry.internal:8005/health",
    }
    assert registry.calls[-1][:2] == ("DELETE", "/api/v1/services/module-registry-service")


@pytest.mark.truncate
def test_a_registry_down_at_start_never_blocks_and_is_joined_once_it_answers(
    app, database_url, registry
):
    registry.up = False
    reg_app = _app(app, database_url, registry.url)
    # The web side starts and answers while the registry is down.
    assert reg_app.test_client().get("/info").status_code == 200
    stop, thread = _start(reg_app, RegistryClient(reg_app.config))
    try:
        assert _wait_for(lambda: len(registry.calls) >= 1)
        assert _wait_for(lambda: _health(reg_app) == "unreachable")
        registry.up = True
        assert _wait_for(lambda: _health(reg_app) == "registered", seconds=15)
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.mark.truncate
def test_an_unreachable_registry_address_is_reported_as_unreachable(app, database_url):
    reg_app = _app(app, database_url, f"http://127.0.0.1:{free_port()}")
    stop, thread = _start(reg_app, RegistryClient(reg_app.config))
    try:
        assert _wait_for(lambda: _health(reg_app) == "unreachable")
    finally:
        stop.set()
        thread.join(timeout=10)
    with reg_app.app_context():
        db.session.remove()


def test_health_says_disabled_without_a_registry(client):
    assert client.get("/health").get_json()["checks"]["service_registry"] == "disabled"


def test_paths_are_configurable(app, database_url, registry):
    registry.routes[("POST", "/register")] = (201, {})
    reg_app = _app(app, database_url, registry.url)
    reg_app.config["SERVICE_REGISTRY_REGISTER_PATH"] = "/register"
    RegistryClient(reg_app.config).register()
    assert registry.calls[-1][:2] == ("POST", "/register")
