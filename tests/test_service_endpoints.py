"""/health and /info."""

from __future__ import annotations

import pytest

from portal import create_app
from portal.config import TestConfig


def test_health_reports_every_check(client):
    resp = client.get("/health")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "healthy"
    assert body["checks"] == {
        "database": "ok",
        "redis": "disabled",
        "storage": "ok",
        "service_registry": "disabled",
    }


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


def test_health_says_redis_is_unavailable_without_failing(tmp_path, database_url):
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


def test_health_reports_redis_ok_when_it_answers(tmp_path, database_url, redis_url):
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
