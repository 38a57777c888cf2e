"""First journeys: what each demo role sees in the top bar, signing out, and API tokens."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.pages import nav_labels, sign_in, sign_out

PLATFORM_ADMIN = "admin@example.com"
DEVELOPER = "dev@acme.example.com"
COMPANY_ADMIN = "admin@acme.example.com"

# The exact links each demo account sees in `nav[aria-label=Main]` (portal/web/nav.py),
# in order, badge counts stripped. Add a role's new link here when its page lands.
EXPECTED_NAV = {
    PLATFORM_ADMIN: ["Marketplace", "Review queue", "Activity", "API tokens"],
    DEVELOPER: ["Marketplace", "Publish", "API tokens"],
    COMPANY_ADMIN: ["Marketplace", "Installations", "Activity", "API tokens"],
}


@pytest.mark.parametrize(
    ("email", "expected"), [pytest.param(e, labels, id=e) for e, labels in EXPECTED_NAV.items()]
)
def test_each_role_sees_its_own_navigation(page, base_url, demo_people, email, expected):
    sign_in(page, base_url, email)

    assert nav_labels(page) == expected
    expect(page.get_by_role("link", name="Marketplace")).to_have_attribute("aria-current", "page")


def test_signing_out_leads_to_the_sign_in_page_and_closes_the_pages(page, base_url, demo_people):
    sign_in(page, base_url, DEVELOPER)

    sign_out(page)

    expect(page).to_have_url(f"{base_url}/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#flash")).to_contain_text("You are signed out.")
    expect(page.locator("nav[aria-label=Main]")).to_have_count(0)

    page.goto(f"{base_url}/tokens")

    expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)tokens$"))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_a_developer_creates_and_revokes_a_token_without_a_page_reload(page, base_url, demo_people):
    sign_in(page, base_url, DEVELOPER)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API tokens").click()
    expect(page).to_have_url(f"{base_url}/tokens")
    expect(page.get_by_role("heading", name="Personal API tokens")).to_be_visible()
    # A full page load would wipe this; an htmx swap keeps it.
    page.evaluate("window.__marker = 'no-reload'")

    page.get_by_label("Token name").fill("ci-pipeline")
    page.get_by_role("button", name="Create token").click()

    expect(page.get_by_test_id("new-token")).to_be_visible()
    expect(page.get_by_test_id("new-token")).not_to_be_empty()
    row = page.get_by_role("row").filter(has_text="ci-pipeline")
    expect(row.get_by_test_id("token-status")).to_have_text("active")
    expect(page.get_by_label("Token name")).to_have_value("")
    assert page.url == f"{base_url}/tokens"
    assert page.evaluate("window.__marker") == "no-reload"

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke ci-pipeline").click()

    expect(row.get_by_test_id("token-status")).to_have_text("revoked")
    expect(row.get_by_role("button", name="Revoke ci-pipeline")).to_have_count(0)
    expect(page.get_by_test_id("new-token")).to_have_count(0)
    assert page.url == f"{base_url}/tokens"
    assert page.evaluate("window.__marker") == "no-reload"
