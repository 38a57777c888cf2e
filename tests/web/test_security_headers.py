"""Security headers on every answer (reliability review D5): a strict CSP, no framing, no
sniffing, no referrer off the site, nothing private cached, HSTS in production."""

from __future__ import annotations

import pytest

from portal import create_app
from portal.config import Config
from tests.helpers import bearer, login


def _assert_strict(resp):
    policy = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize("path", ["/login", "/", "/tokens", "/publish", "/admin/queue", "/docs"])
def test_every_signed_in_page_is_strict_and_never_cached(client, people, path):
    login(client, people.admin.email)
    resp = client.get(path)
    _assert_strict(resp)
    assert resp.headers["Cache-Control"] == "no-store"


def test_an_anonymous_page_is_strict_too(client):
    resp = client.get("/login")
    _assert_strict(resp)
    assert "Strict-Transport-Security" not in resp.headers  # development


def test_api_answers_to_a_credentialed_request_are_never_cached(app, client, people):
    resp = client.get("/api/v1/modules/", headers=bearer(app, people.developer.email))
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    _assert_strict(resp)


def test_static_files_stay_cacheable(client):
    resp = client.get("/static/css/app.css")
    assert resp.headers.get("Cache-Control") != "no-store"
    resp.close()


def test_redoc_alone_may_use_inline_styles(client):
    policy = client.get("/redoc").headers["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy and "script-src 'self'" in policy


def test_production_sends_hsts(monkeypatch, tmp_path):
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/r.db")
    resp = create_app(Config()).test_client().get("/health/live")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000")
