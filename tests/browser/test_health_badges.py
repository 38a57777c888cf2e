"""Health badges refresh by themselves: a fake module runtime (a real HTTP server on
127.0.0.1) answers /health; the company admin keeps the installations page open while the
installation is checked, sees "healthy" appear without a reload, then, once the runtime
fails and is checked again, "unhealthy", with the message and check time on hover and on
keyboard focus."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.services.accounts import users
from portal.services.health.probes import check_installation
from portal.services.installations.installs import InstallRequest, install_module
from tests.browser.pages import mark_page, page_was_not_reloaded, sign_in
from tests.fake_servers import FakeServer
from tests.helpers import approved_release

COMPANY_ADMIN = "admin@acme.example.com"
MODULE = "signal-beacon"


@pytest.fixture
def runtime():
    """The module's runtime: /health answers 200 until the test says otherwise."""
    server = FakeServer()
    server.routes[("GET", "/health")] = (200, {"status": "ok"})
    yield server
    server.stop()


@pytest.fixture
def beacon(app, demo_people, runtime):
    """acme has signal-beacon installed, its endpoint the fake runtime; not checked yet."""
    with app.app_context():
        people = {"actor_email": "dev@acme.example.com", "admin_email": "admin@example.com"}
        approved_release(
            MODULE, "1.0.0", health_check={"path": "/health", "timeout_seconds": 2}, **people
        )
        inst, _ = install_module(
            InstallRequest(module=MODULE, endpoint_url=runtime.url),
            actor=users.user_by_email(COMPANY_ADMIN),
        )
        installation_id = inst.id
        db.session.remove()
    return installation_id


def _is_poll(request) -> bool:
    """The installations page's health poll (#health-poller's hx-get)."""
    return urlsplit(request.url).path == "/company/acme/installations/health"


def _check(app, installation_id: int) -> str:
    """Run an active health check now, as the scheduler would; returns the status."""
    with app.app_context():
        result = check_installation(installation_id, actor=users.user_by_email(COMPANY_ADMIN))
        db.session.remove()
    return result.status


def test_health_badges_follow_the_runtime_without_a_reload(
    page, base_url, live_server, app, beacon, runtime, monkeypatch
):
    monkeypatch.setitem(live_server.app.config, "HEALTH_BADGE_POLL_SECONDS", 1)
    sign_in(page, base_url, COMPANY_ADMIN)
    page.goto(f"{base_url}/company/acme/installations")
    row = page.locator(f'#installation-rows tr[data-module="{MODULE}"]')
    badge = row.get_by_test_id("health")
    expect(badge).to_have_text("unknown")
    expect(badge).to_have_attribute("title", "not checked yet")
    mark_page(page)

    assert _check(app, beacon) == "healthy"
    expect(badge).to_have_text("healthy")  # polled in, no reload
    expect(badge).to_have_attribute("title", re.compile(r"^200 OK · checked \d{4}-\d\d-\d\d "))
    assert page_was_not_reloaded(page)

    runtime.routes[("GET", "/health")] = (500, {"error": "database down"})
    assert _check(app, beacon) == "unhealthy"
    expect(badge).to_have_text("unhealthy")
    expect(badge).to_have_attribute("data-status", "unhealthy")
    assert page_was_not_reloaded(page)
    message = re.compile(r"answered 500 Internal Server Error\s*checked \d{4}-\d\d-\d\d")

    # On hover: the tooltip shows the message and the time of the check.
    tooltip = row.get_by_role("tooltip")
    expect(tooltip).to_be_hidden()
    badge.hover()
    expect(tooltip).to_be_visible()
    expect(tooltip).to_have_text(message)
    page.mouse.move(0, 0)
    expect(tooltip).to_be_hidden()

    # On keyboard focus: Tab reaches the badge, which is described by the tooltip; the
    # polling goes on underneath without taking the focus away.
    holder = row.get_by_test_id("health-badge")
    row.locator("a").first.focus()
    page.keyboard.press("Tab")
    for _ in range(8):
        if holder.evaluate("el => el === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(holder).to_be_focused()
    expect(tooltip).to_be_visible()
    expect(tooltip).to_have_text(message)
    expect(holder).to_have_accessible_description(message)
    for _ in range(2):  # two more polls, answered while the badge keeps the focus
        with page.expect_request(_is_poll) as poll:
            pass
        poll.value.response()
    expect(holder).to_be_focused()
    expect(tooltip).to_be_visible()

    # And back: the runtime recovers, the badge follows.
    runtime.routes[("GET", "/health")] = (200, {"status": "ok"})
    assert _check(app, beacon) == "healthy"
    expect(badge).to_have_text("healthy")
    assert page_was_not_reloaded(page)
