"""Marketplace journeys: a company admin types in the marketplace search, watches the
results narrow, uses the browser's back button to the earlier results, and opens a module
page. Without JavaScript the same search form still works."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.services.accounts import users
from portal.services.review import decisions
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.pages import mark_page, page_was_not_reloaded, sign_in
from tests.helpers import publish_manifest

COMPANY_ADMIN = "admin@acme.example.com"
DEVELOPER = "dev@acme.example.com"
PLATFORM_ADMIN = "admin@example.com"

MODULES = [
    ("purchasing", "Purchasing", "Orders and supplier invoices."),
    ("purchase-requests", "Purchase Requests", "Requests made before an order."),
    ("payroll", "Payroll", "Salaries and payslips."),
    ("inventory", "Inventory", "Stock levels and warehouses."),
]


@pytest.fixture
def marketplace(app, demo_people):
    """Four approved modules, published by the demo developer and approved by the admin."""
    with app.app_context():
        admin = users.user_by_email(PLATFORM_ADMIN)
        for name, display, description in MODULES:
            release = publish_manifest(
                {
                    "name": name,
                    "version": "1.0.0",
                    "display_name": display,
                    "description": description,
                    "author": "Acme",
                },
                actor_email=DEVELOPER,
            )
            decisions.change_status(release.id, "approved", actor=admin)
        db.session.remove()


def _cards(page):
    return page.locator("#results [data-testid=module-card]")


def _expect_cards(page, names: list[str]) -> None:
    expect(_cards(page)).to_have_count(len(names))
    for name in names:
        expect(page.locator(f'#results [data-name="{name}"]')).to_be_visible()


def _query_is(value: str):
    return re.compile(rf"[?&]q={re.escape(value)}(&|$)")


def test_a_company_admin_searches_goes_back_and_opens_a_module(page, base_url, marketplace):
    sign_in(page, base_url, COMPANY_ADMIN)
    page.goto(f"{base_url}/")
    everything = ["inventory", "payroll", "purchase-requests", "purchasing"]
    _expect_cards(page, everything)
    mark_page(page)
    search = page.get_by_label("Search modules")

    search.fill("p")
    _expect_cards(page, ["payroll", "purchase-requests", "purchasing"])
    expect(page).to_have_url(_query_is("p"))

    search.fill("pur")
    _expect_cards(page, ["purchase-requests", "purchasing"])
    expect(page).to_have_url(_query_is("pur"))
    expect(page.get_by_test_id("result-count")).to_contain_text("2 modules")
    assert page_was_not_reloaded(page)

    page.go_back()
    expect(page).to_have_url(_query_is("p"))
    _expect_cards(page, ["payroll", "purchase-requests", "purchasing"])
    expect(page.get_by_label("Search modules")).to_have_value("p")

    page.go_back()
    expect(page).to_have_url(f"{base_url}/")
    _expect_cards(page, everything)

    page.go_forward()
    expect(page).to_have_url(_query_is("p"))
    _expect_cards(page, ["payroll", "purchase-requests", "purchasing"])

    with page.expect_navigation():
        page.locator('#results [data-name="purchasing"]').get_by_role(
            "link", name="Purchasing"
        ).click()
    expect(page).to_have_url(f"{base_url}/modules/purchasing")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Purchasing")
    expect(page.get_by_role("heading", level=1)).to_contain_text("1.0.0")
    expect(page.locator(".module-description")).to_have_text("Orders and supplier invoices.")
    expect(page.get_by_test_id("install")).to_be_visible()


def test_a_shared_search_link_shows_the_same_results(page, base_url, marketplace):
    sign_in(page, base_url, COMPANY_ADMIN)
    page.goto(f"{base_url}/?q=pur&sort=name")
    _expect_cards(page, ["purchase-requests", "purchasing"])
    expect(page.get_by_label("Search modules")).to_have_value("pur")
    expect(page.get_by_label("Sort by")).to_have_value("name")


def test_searching_works_without_javascript(new_context, base_url, marketplace):
    context = new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, base_url, COMPANY_ADMIN)
    page.goto(f"{base_url}/")
    page.get_by_label("Search modules").fill("pur")
    with page.expect_navigation():
        page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(_query_is("pur"))
    _expect_cards(page, ["purchase-requests", "purchasing"])
