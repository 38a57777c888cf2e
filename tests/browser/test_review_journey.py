"""Review journeys: a platform admin works the approval queue, opening each release's check
report in place, approving one and rejecting another with a reason, from the keyboard and
without a page reload, while the count in the navigation follows; the developer then reads
the reason under "My releases". Without JavaScript the same queue still works."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import ModuleRelease
from portal.models.base import utcnow
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.pages import (
    mark_page,
    open_from_nav,
    page_was_not_reloaded,
    release_row,
    sign_in,
    sign_out,
)
from tests.helpers import publish_manifest
from tests.packaging import manifest

PLATFORM_ADMIN = "admin@example.com"
DEVELOPER = "dev@acme.example.com"
APPROVE = "travel-expenses"
REJECT = "fleet-tracking"
LATER = "shift-planning"
REASON = "Describe the configuration fields, and add a health check."


def _seed_queue(app) -> None:
    """Three pending releases of the demo developer, oldest first: APPROVE, REJECT, LATER."""
    with app.app_context():
        for hours, name in ((5, APPROVE), (4, REJECT), (3, LATER)):
            release = publish_manifest(
                manifest(name, "1.0.0", display_name=name.replace("-", " ").title()),
                actor_email=DEVELOPER,
            )
            db.session.execute(
                sa.update(ModuleRelease)
                .where(ModuleRelease.id == release.id)
                .values(created_at=utcnow() - timedelta(hours=hours))
            )
            db.session.commit()
        db.session.remove()


def _item(page, name: str):
    return page.locator(f'#queue-items li[data-name="{name}"]')


def _badge(page):
    return page.get_by_role("navigation", name="Main").locator("#nav-count-queue")


def test_an_admin_approves_one_release_and_rejects_another_without_a_reload(
    page, base_url, live_server, demo_people
):
    _seed_queue(live_server.app)
    sign_in(page, base_url, PLATFORM_ADMIN)
    # The link's accessible name carries its badge ("Review queue 3"): open_from_nav's
    # exact name would not match it.
    nav = page.get_by_role("navigation", name="Main")
    with page.expect_navigation():
        nav.get_by_role("link", name=re.compile(r"^Review queue\b")).click()
    expect(page).to_have_url(f"{base_url}/admin/queue")
    expect(page.get_by_role("heading", name="Review queue", level=1)).to_be_visible()
    items = page.locator("#queue-items > li")
    expect(items).to_have_count(3)
    expect(items.nth(0)).to_have_attribute("data-name", APPROVE)
    expect(_item(page, APPROVE).get_by_test_id("age")).to_have_text("5 hours ago")
    expect(_badge(page)).to_have_text("3")
    mark_page(page)

    # Approve the oldest: its report opens in place, focus on the report's heading.
    _item(page, APPROVE).get_by_role("link", name=f"Review {APPROVE} 1.0.0").click()
    report = _item(page, APPROVE).get_by_test_id("report")
    expect(report.get_by_role("heading", name=f"Check report: {APPROVE} 1.0.0")).to_be_focused()
    expect(report.get_by_test_id("manifest")).to_contain_text("Passed validation")
    expect(report.get_by_test_id("package")).to_contain_text("Manifest-only release")
    expect(report.get_by_test_id("diff")).to_contain_text(f"First release of {APPROVE}")
    report.get_by_role("button", name="Approve").click()

    expect(_item(page, APPROVE)).to_have_count(0)
    expect(items).to_have_count(2)
    expect(_badge(page)).to_have_text("2")
    expect(page.locator("#flash")).to_contain_text(f"Approved {APPROVE} 1.0.0.")
    expect(page.locator("#queue-status")).to_contain_text("2 releases waiting")
    # The keyboard focus moved on to the next release's Review link.
    next_link = _item(page, REJECT).get_by_role("link", name=f"Review {REJECT} 1.0.0")
    expect(next_link).to_be_focused()
    assert page.url == f"{base_url}/admin/queue"
    assert page_was_not_reloaded(page)

    # Reject the next one, from the keyboard; a blank reason is refused beside the field.
    page.keyboard.press("Enter")
    report = _item(page, REJECT).get_by_test_id("report")
    expect(report.get_by_role("heading", name=f"Check report: {REJECT} 1.0.0")).to_be_focused()
    reason = report.get_by_label("Reason for rejecting")
    reason.fill("   ")
    report.get_by_role("button", name="Reject").click()
    expect(report.locator(".reject-form .error")).to_contain_text("say what the publisher")
    expect(report.get_by_label("Reason for rejecting")).to_be_focused()
    expect(_badge(page)).to_have_text("2")
    expect(items).to_have_count(2)

    report.get_by_label("Reason for rejecting").fill(REASON)
    report.get_by_role("button", name="Reject").click()

    expect(_item(page, REJECT)).to_have_count(0)
    expect(items).to_have_count(1)
    expect(_badge(page)).to_have_text("1")
    expect(page.locator("#flash")).to_contain_text(f"Rejected {REJECT} 1.0.0: {REASON}")
    expect(_item(page, LATER).get_by_role("link", name=f"Review {LATER} 1.0.0")).to_be_focused()
    assert page.url == f"{base_url}/admin/queue"
    assert page_was_not_reloaded(page)

    # The developer then reads the reason under "My releases".
    sign_out(page)
    sign_in(page, base_url, DEVELOPER)
    open_from_nav(page, "Publish")
    rejected = release_row(page, REJECT, "1.0.0")
    expect(rejected.get_by_test_id("status")).to_have_text("rejected")
    expect(rejected.get_by_test_id("reason")).to_have_text(REASON)
    expect(rejected.get_by_role("link", name="Fix and resubmit")).to_be_visible()
    expect(release_row(page, APPROVE, "1.0.0").get_by_test_id("status")).to_have_text("approved")
    expect(release_row(page, LATER, "1.0.0").get_by_test_id("status")).to_have_text("pending")


def test_the_publisher_filter_narrows_the_list_and_keeps_its_url(
    page, base_url, live_server, demo_people
):
    _seed_queue(live_server.app)
    with live_server.app.app_context():
        publish_manifest(manifest("globex-ledger", "1.0.0"), actor_email="dev@globex.example.com")
        db.session.remove()
    sign_in(page, base_url, PLATFORM_ADMIN)
    page.goto(f"{base_url}/admin/queue")
    mark_page(page)
    items = page.locator("#queue-items > li")
    expect(items).to_have_count(4)

    page.get_by_label("Publisher").select_option(label="Globex Inc.")

    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-name", "globex-ledger")
    expect(page).to_have_url(f"{base_url}/admin/queue?publisher=globex")
    assert page_was_not_reloaded(page)

    page.go_back()
    expect(page).to_have_url(f"{base_url}/admin/queue")
    expect(items).to_have_count(4)


def test_the_queue_works_without_javascript(new_context, base_url, live_server, demo_people):
    _seed_queue(live_server.app)
    context = new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, base_url, PLATFORM_ADMIN)
    page.goto(f"{base_url}/admin/queue")

    page.get_by_label("Publisher").select_option(label="Acme Corporation")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(f"{base_url}/admin/queue?publisher=acme")

    with page.expect_navigation():
        _item(page, REJECT).get_by_role("link", name=f"Review {REJECT} 1.0.0").click()
    expect(page.get_by_role("heading", name=f"Check report: {REJECT} 1.0.0")).to_be_visible()
    # The browser itself refuses an empty required reason; a blank one, the server.
    page.get_by_label("Reason for rejecting").fill(" ")
    with page.expect_navigation():
        page.get_by_role("button", name="Reject").click()
    expect(page.locator(".reject-form .error")).to_contain_text("say what the publisher")

    page.get_by_label("Reason for rejecting").fill(REASON)
    with page.expect_navigation():
        page.get_by_role("button", name="Reject").click()

    expect(page).to_have_url(f"{base_url}/admin/queue?publisher=acme")
    expect(page.locator("#flash")).to_contain_text(f"Rejected {REJECT} 1.0.0")
    expect(page.locator("#queue-items > li")).to_have_count(2)
    expect(_badge(page)).to_have_text("2")
