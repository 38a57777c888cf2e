"""Active health checks (health: "a timeout and no redirects") against real HTTP servers on
127.0.0.1 playing a module runtime: healthy, slow, 500, redirecting, hanging, trickling,
answering 10 MB. Then the API's `POST /installations/{id}/health-check`, the history and
events, and the endpoint URL refused when saved."""

from __future__ import annotations

import socket
import time

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.lib import outbound
from portal.lib.outbound import default_networks
from portal.models import Event, HealthChange, Installation
from portal.services.accounts import users
from portal.services.health.probes import MAX_BODY_BYTES, check_url_of, probe
from portal.services.installations.installs import InstallRequest, install_module
from tests.fake_servers import TEN_MB
from tests.helpers import approved_release, bearer, problem_of

DEV = default_networks("development")
PROD = default_networks("production")


def check(runtime, path, timeout=1.0, **kwargs):
    return probe(runtime.url, path=path, timeout=timeout, allowed_networks=DEV, **kwargs)


# --- probe against a real runtime -------------------------------------------------------


def test_healthy(runtime):
    result = check(runtime, "/health")
    assert result.status == "healthy", result
    assert result.message == "200 OK"
    assert result.http_status == 200 and 0 <= result.latency_ms < 500
    assert runtime.requests == [("/health", runtime.url.removeprefix("http://"))]


def test_slower_than_half_the_timeout_is_degraded(runtime):
    result = check(runtime, "/slow", timeout=1.0)
    assert result.status == "degraded", result
    assert result.latency_ms >= 500
    assert "200 OK, slow" in result.message and "half the 1 s timeout" in result.message


def test_a_500_is_unhealthy_with_the_status_line(runtime):
    result = check(runtime, "/error")
    assert (result.status, result.message) == ("unhealthy", "answered 500 Internal Server Error")


def test_a_redirect_is_not_followed(runtime):
    result = check(runtime, "/redirect")
    assert result.status == "unhealthy"
    assert result.message == (
        "redirect not followed: 302 to http://169.254.169.254/latest/meta-data/"
    )
    assert runtime.paths() == ["/redirect"]  # one request: nothing followed


def test_a_hanging_endpoint_is_unhealthy_after_the_timeout(runtime):
    started = time.monotonic()
    result = check(runtime, "/hang", timeout=1.0)
    elapsed = time.monotonic() - started
    assert result.status == "unhealthy"
    assert result.message == "no answer within 1 s"
    assert 0.95 <= elapsed < 1.5


def test_a_trickling_endpoint_ends_at_the_overall_deadline(runtime):
    """Each byte comes well within any per-read timeout; the deadline still ends it."""
    started = time.monotonic()
    result = check(runtime, "/trickle", timeout=1.0)
    assert result.status == "unhealthy" and result.message == "no answer within 1 s"
    assert time.monotonic() - started < 1.5


def test_a_10_mb_answer_is_cut_at_64_kib(runtime):
    started = time.monotonic()
    result = check(runtime, "/big", timeout=3.0)
    assert result.status == "healthy", result
    assert result.body_bytes == MAX_BODY_BYTES  # the client read 64 KiB and stopped
    assert time.monotonic() - started < 1.5
    # The connection was closed under the server's feet: it never got to send it all.
    assert runtime.big_done.wait(5)
    assert runtime.big_sent < TEN_MB


def test_a_closed_port_is_unhealthy_with_the_reason():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = probe(f"http://127.0.0.1:{port}", allowed_networks=DEV, timeout=1)
    assert result.status == "unhealthy"
    assert result.message == f"connection to 127.0.0.1:{port} failed: Connection refused"


def test_a_refused_address_is_never_connected_to(runtime):
    result = probe(
        "http://metadata.test/", allowed_networks=DEV, resolver=lambda h, p: ["169.254.169.254"]
    )
    assert result.status == "unhealthy"
    assert result.message.startswith("refused: metadata.test resolves to 169.254.169.254")
    # With loopback not allowed, the runtime itself is refused and never hears from us.
    result = probe(runtime.url, allowed_networks=PROD, timeout=1)
    assert result.status == "unhealthy" and "not in the allowed networks" in result.message
    assert runtime.requests == []


def test_the_path_is_joined_to_the_endpoint(runtime):
    assert check_url_of("http://h:9/app/", "/health") == "http://h:9/app/health"
    assert check_url_of("http://h:9", "healthz") == "http://h:9/healthz"
    assert check(runtime, "/status", timeout=1).status == "healthy"
    probe(runtime.url + "/app", path="/health", allowed_networks=DEV, timeout=1)
    assert runtime.paths() == ["/status", "/app/health"]


def test_an_unresolvable_name_is_unhealthy():
    def nowhere(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    result = probe("http://nowhere.test", allowed_networks=DEV, resolver=nowhere, timeout=1)
    assert result.status == "unhealthy"
    assert result.message.startswith("cannot resolve nowhere.test")


# --- the API: POST /installations/{id}/health-check ----------------------------------


@pytest.fixture
def installed(app, people, runtime):
    """acme has `ledger` (health path /health, timeout 1 s) at the runtime, and `notes`
    without an endpoint."""
    with app.app_context():
        approved_release(
            "ledger", health_check={"path": "/health", "timeout_seconds": 1, "interval_seconds": 10}
        )
        approved_release("notes")
        admin = users.user_by_email("admin@acme.test")
        ledger, _ = install_module(
            InstallRequest(module="ledger", endpoint_url=runtime.url), actor=admin
        )
        notes, _ = install_module(InstallRequest(module="notes"), actor=admin)
        ids = (ledger.id, notes.id)
        db.session.remove()
    return ids


def _health_check(client, app, inst_id, email="admin@acme.test"):
    return client.post(f"/api/v1/installations/{inst_id}/health-check", headers=bearer(app, email))


def _history(app, inst_id):
    with app.app_context():
        changes = db.session.execute(
            sa.select(HealthChange)
            .where(HealthChange.installation_id == inst_id)
            .order_by(HealthChange.id)
        ).scalars()
        rows = [(c.from_status, c.to_status, c.source) for c in changes]
        events = db.session.execute(
            sa.select(Event)
            .where(Event.type == "installation.health_changed", Event.installation_id == inst_id)
            .order_by(Event.id)
        ).scalars()
        data = [(e.data["from"], e.data["to"], e.data["source"]) for e in events]
        db.session.remove()
    return rows, data


def test_check_now_answers_the_result_and_records_it(app, client, installed, runtime):
    ledger, _notes = installed
    resp = _health_check(client, app, ledger)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"status", "latency_ms", "checked_at", "message"}
    assert body["status"] == "healthy" and body["message"] == "200 OK"
    assert isinstance(body["latency_ms"], int) and body["checked_at"].endswith("Z")
    assert runtime.paths() == ["/health"]
    with app.app_context():
        inst = db.session.get(Installation, ledger)
        assert (inst.health_status, inst.health_message) == ("healthy", "200 OK")
        db.session.remove()


def test_history_and_events_only_on_change(app, client, installed, runtime):
    ledger, _notes = installed
    for _ in range(2):
        assert _health_check(client, app, ledger).get_json()["status"] == "healthy"
    assert _history(app, ledger) == (
        [("unknown", "healthy", "check")],
        [("unknown", "healthy", "check")],
    )
    runtime.failing = True
    for _ in range(2):
        body = _health_check(client, app, ledger).get_json()
        assert body["status"] == "unhealthy"
        assert body["message"] == "answered 503 Service Unavailable"
    runtime.failing = False
    assert _health_check(client, app, ledger).get_json()["status"] == "healthy"
    expected = [
        ("unknown", "healthy", "check"),
        ("healthy", "unhealthy", "check"),
        ("unhealthy", "healthy", "check"),
    ]
    assert _history(app, ledger) == (expected, expected)


def test_a_hanging_endpoint_through_the_api(app, client, installed, runtime):
    ledger, _notes = installed
    # The manifest's path and timeout are used: make the runtime hang on that path.
    with app.app_context():
        inst = db.session.get(Installation, ledger)
        inst.release.manifest = {
            **inst.release.manifest,
            "health_check": {"path": "/hang", "timeout_seconds": 1},
        }
        db.session.commit()
        db.session.remove()
    started = time.monotonic()
    body = _health_check(client, app, ledger).get_json()
    assert body["status"] == "unhealthy" and body["message"] == "no answer within 1 s"
    assert time.monotonic() - started < 2


def test_no_endpoint_is_409(app, client, installed):
    _ledger, notes = installed
    body = problem_of(_health_check(client, app, notes), 409)
    assert "no endpoint_url" in body["detail"]


@pytest.mark.parametrize("email", ["admin@globex.test", "dev@globex.test", "dev@acme.test"])
def test_another_company_or_a_developer_gets_404(app, client, installed, runtime, email):
    ledger, _notes = installed
    problem_of(_health_check(client, app, ledger, email=email), 404)
    assert runtime.requests == []


def test_platform_admins_may_check(app, client, installed):
    ledger, _notes = installed
    resp = _health_check(client, app, ledger, email="admin@example.com")
    assert resp.status_code == 200 and resp.get_json()["status"] == "healthy"


def test_anonymous_is_401(client, installed):
    ledger, _notes = installed
    assert client.post(f"/api/v1/installations/{ledger}/health-check").status_code == 401


def test_an_endpoint_allowed_when_saved_is_checked_again(
    app, client, installed, runtime, monkeypatch
):
    """Loopback was allowed when the URL was saved; now it is not: the check refuses."""
    ledger, _notes = installed
    monkeypatch.setitem(app.config, "HEALTH_CHECK_ALLOWED_NETWORKS", PROD)
    body = _health_check(client, app, ledger).get_json()
    assert body["status"] == "unhealthy"
    assert body["message"].startswith("refused: 127.0.0.1: not in the allowed networks")
    assert runtime.requests == []


# --- the endpoint URL is refused when saved -------------------------------------------


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local or cloud metadata"),
        ("http://[::ffff:169.254.169.254]/", "IPv4-mapped 169.254.169.254"),
        ("http://2852039166/", "2852039166 (= 169.254.169.254)"),
        ("http://224.0.0.1/", "multicast"),
    ],
)
def test_put_refuses_an_endpoint_breaking_the_rule(app, client, installed, url, reason):
    ledger, _notes = installed
    resp = client.put(
        f"/api/v1/installations/{ledger}",
        json={"endpoint_url": url},
        headers=bearer(app, "admin@acme.test"),
    )
    body = problem_of(resp, 422)
    [error] = body["errors"]
    assert error["pointer"] == "/endpoint_url" and reason in error["message"]
    assert reason in body["detail"]


def test_put_refuses_a_name_resolving_to_a_refused_address(app, client, installed, monkeypatch):
    ledger, _notes = installed
    monkeypatch.setattr(outbound, "system_resolver", lambda h, p: ["169.254.169.254"])
    resp = client.put(
        f"/api/v1/installations/{ledger}",
        json={"endpoint_url": "http://runtime.acme.test:8080"},
        headers=bearer(app, "admin@acme.test"),
    )
    body = problem_of(resp, 422)
    assert "runtime.acme.test resolves to 169.254.169.254" in body["errors"][0]["message"]


def test_put_refuses_localhost_when_loopback_is_not_allowed(app, client, installed, monkeypatch):
    ledger, _notes = installed
    monkeypatch.setitem(app.config, "HEALTH_CHECK_ALLOWED_NETWORKS", PROD)
    resp = client.put(
        f"/api/v1/installations/{ledger}",
        json={"endpoint_url": "http://localhost:9000"},
        headers=bearer(app, "admin@acme.test"),
    )
    assert "localhost resolves to 127.0.0.1" in problem_of(resp, 422)["errors"][0]["message"]


def test_put_keeps_an_allowed_or_unresolvable_endpoint(app, client, installed, monkeypatch):
    ledger, _notes = installed
    headers = bearer(app, "admin@acme.test")
    for url in ("http://10.1.2.3:9000", "http://ledger.acme.internal:9000"):
        resp = client.put(
            f"/api/v1/installations/{ledger}", json={"endpoint_url": url}, headers=headers
        )
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.get_json()["endpoint_url"] == url


def test_install_refuses_an_endpoint_breaking_the_rule(app, client, people):
    with app.app_context():
        approved_release("ledger")
        db.session.remove()
    resp = client.post(
        "/api/v1/installations",
        json={"module": "ledger", "endpoint_url": "http://[64:ff9b::a9fe:a9fe]/"},
        headers=bearer(app, "admin@acme.test"),
    )
    body = problem_of(resp, 422)
    assert body["errors"][0]["pointer"] == "/endpoint_url"
    assert "NAT64 169.254.169.254" in body["errors"][0]["message"]
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count(Installation.id))).scalar() == 0
        db.session.remove()
