"""The strict Content-Security-Policy holds in a real browser: the journeys run under it
(conftest fails any test whose pages report a violation), the API docs viewers work under
theirs, and the check does see a violation when there is one."""

from __future__ import annotations

from playwright.sync_api import expect

from portal.extensions import db
from tests.browser.pages import sign_in
from tests.helpers import publish_manifest
from tests.packaging import manifest


def test_the_check_sees_an_inline_script_the_policy_blocks(page, base_url, csp_violations):
    page.route(
        f"{base_url}/csp-probe",
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            headers={"Content-Security-Policy": "script-src 'self'"},
            body="<!doctype html><title>probe</title><script>document.title='ran'</script>",
        ),
    )
    page.goto(f"{base_url}/csp-probe")
    expect(page).to_have_title("probe")  # the inline script did not run
    assert any("Content Security Policy" in v for v in csp_violations)
    csp_violations.clear()  # seen, as it should be: the test itself passes


def test_swagger_ui_and_redoc_render_under_their_policies(page, base_url, csp_violations):
    page.goto(f"{base_url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Module Registry")
    assert csp_violations == []
    page.goto(f"{base_url}/redoc")
    expect(page.locator("h1").first).to_contain_text("Module Registry")
    # ReDoc's footer fetches its logo from its vendor's CDN: the policy blocking it is the
    # point (the docs never reach out), so that one report is expected; no other is.
    assert all("cdn.redoc.ly" in v for v in csp_violations), csp_violations
    csp_violations.clear()


def test_a_report_closes_with_its_link_and_gives_focus_back(
    page, base_url, live_server, demo_people
):
    """The close links used inline handlers, which the policy forbids: now app.js."""
    with live_server.app.app_context():
        release_id = publish_manifest(
            manifest("csp-check", "1.0.0"), actor_email="dev@acme.example.com"
        ).id
        db.session.remove()
    sign_in(page, base_url, "admin@example.com")
    page.goto(f"{base_url}/admin/queue")
    page.get_by_role("link", name="Review csp-check 1.0.0").click()
    detail = page.locator(f"#queue-detail-{release_id}")
    close = detail.get_by_role("link", name="Close the report of csp-check 1.0.0")
    expect(close).to_be_visible()
    close.click()
    expect(detail).to_be_empty()
    expect(page.locator(f"#review-link-{release_id}")).to_be_focused()
