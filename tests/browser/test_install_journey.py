"""Installing in the browser: a company admin opens a module whose dependency the company
lacks, presses install, sees a plan of two modules, fills the generated form, sees an inline
error for a bad value without a reload, fixes it, confirms, and finds both modules on the
company's installations page. Without JavaScript the same form still works."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.pages import mark_page, page_was_not_reloaded, sign_in
from tests.helpers import approved_release

COMPANY_ADMIN = "admin@acme.example.com"
MODULE, DEPENDENCY = "fleet-tracker", "geo-fencing"

FLEET_SCHEMA = {
    "type": "object",
    "required": ["max_vehicles", "region", "api_token"],
    "properties": {
        "max_vehicles": {
            "type": "integer",
            "title": "Maximum vehicles",
            "minimum": 1,
            "maximum": 500,
            "description": "How many vehicles the company tracks at most.",
        },
        "region": {"type": "string", "title": "Region", "enum": ["eu", "us", "apac"]},
        "api_token": {"type": "string", "title": "API token", "writeOnly": True},
        "live": {"type": "boolean", "title": "Live tracking", "default": True},
    },
    "additionalProperties": False,
}
GEO_SCHEMA = {
    "type": "object",
    "required": ["radius_m"],
    "properties": {
        "radius_m": {
            "type": "integer",
            "title": "Radius (m)",
            "minimum": 10,
            "multipleOf": 10,
            "default": 100,
        },
        "zones": {"type": "array", "title": "Zones", "items": {"type": "string"}},
    },
}


@pytest.fixture
def fleet_catalog(app, demo_people):
    """fleet-tracker 1.0.0 needs geo-fencing ^2.0.0; acme has neither."""
    with app.app_context():
        people = {"actor_email": "dev@acme.example.com", "admin_email": "admin@example.com"}
        approved_release(DEPENDENCY, "2.1.0", config_schema=GEO_SCHEMA, **people)
        approved_release(
            MODULE, "1.0.0", deps={DEPENDENCY: "^2.0.0"}, config_schema=FLEET_SCHEMA, **people
        )
        db.session.remove()


def _open_install_page(page, base_url) -> str:
    """From the module page: its Install button when it leads somewhere, else the plan's URL
    directly. Returns which way was taken ("button" or "direct")."""
    page.goto(f"{base_url}/modules/{MODULE}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("fleet-tracker")
    button = page.get_by_role("link", name=f"Install {MODULE}")
    if button.count() and button.first.get_attribute("href"):
        with page.expect_navigation():
            button.first.click()
        way = "button"
    else:
        page.goto(f"{base_url}/modules/{MODULE}/install")
        way = "direct"
    # The button pins the version the module page shows.
    expect(page).to_have_url(
        re.compile(rf"{re.escape(base_url)}/modules/{MODULE}/install(\?version=1\.0\.0)?$")
    )
    return way


def test_a_company_admin_installs_a_module_with_its_missing_dependency(
    page, base_url, fleet_catalog, record_property
):
    sign_in(page, base_url, COMPANY_ADMIN)
    record_property("install_page_reached_by", _open_install_page(page, base_url))

    # The plan: the dependency first, then the module, both to be installed.
    plan = page.locator("#plan tbody tr")
    expect(plan).to_have_count(2)
    expect(plan.nth(0)).to_contain_text(DEPENDENCY)
    expect(plan.nth(0)).to_contain_text("2.1.0")
    expect(plan.nth(1)).to_contain_text(MODULE)
    expect(page.locator("#plan").get_by_test_id("action")).to_have_text(["install", "install"])

    # The generated form: a section per module.
    fleet = page.locator("#section-fleet-tracker")
    geo = page.locator("#section-geo-fencing")
    expect(geo.get_by_label("Radius (m)")).to_have_value("100")
    geo.get_by_label("Zones").fill("north\nsouth")
    fleet.get_by_label("Region").select_option("eu")
    fleet.get_by_label("API token").fill("tok-123")
    expect(fleet.get_by_label("Live tracking")).to_be_checked()
    mark_page(page)
    plan_url = page.url

    vehicles = fleet.get_by_label("Maximum vehicles")
    vehicles_errors = page.locator("#cf-config-max_vehicles-errors")
    vehicles.fill("5000")
    expect(vehicles_errors).to_contain_text("Maximum vehicles must be at most 500")
    expect(page.get_by_test_id("validation-failed")).to_be_visible()
    assert page.url == plan_url
    assert page_was_not_reloaded(page)

    vehicles.fill("50")
    expect(vehicles_errors).to_be_empty()
    expect(page.get_by_test_id("validation-ok")).to_be_visible()
    assert page_was_not_reloaded(page)

    with page.expect_navigation():
        page.get_by_role("button", name="Confirm and install").click()

    expect(page).to_have_url(f"{base_url}/company/acme/installations")
    expect(page.locator("#flash")).to_contain_text(
        f"Installed {MODULE} 1.0.0 for Acme Corporation, with {DEPENDENCY} 2.1.0."
    )
    rows = page.locator("#installation-rows tr")
    expect(rows).to_have_count(2)
    for name, version in ((MODULE, "1.0.0"), (DEPENDENCY, "2.1.0")):
        row = page.locator(f'#installation-rows tr[data-module="{name}"]')
        expect(row.get_by_test_id("version")).to_have_text(version)
        expect(row.get_by_test_id("status")).to_have_text("installed")
        expect(row.get_by_test_id("revision")).to_have_text("1")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Installations")).to_have_attribute("aria-current", "page")


def test_installing_works_without_javascript(new_context, base_url, fleet_catalog):
    context = new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, base_url, COMPANY_ADMIN)
    page.goto(f"{base_url}/modules/{MODULE}/install")
    fleet = page.locator("#section-fleet-tracker")
    fleet.get_by_label("Maximum vehicles").fill("20")
    fleet.get_by_label("Region").select_option("us")
    fleet.get_by_label("API token").fill("tok-123")
    # Valid for the browser, refused by the module's schema: the page comes back with it.
    page.locator("#section-geo-fencing").get_by_label("Radius (m)").fill("55")
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm and install").click()

    expect(page.locator("#cf-deps-geo-fencing-radius_m-errors")).to_contain_text(
        "Radius (m) must be a multiple of 10"
    )
    expect(page.locator("#section-fleet-tracker").get_by_label("Maximum vehicles")).to_have_value(
        "20"
    )
    page.locator("#section-geo-fencing").get_by_label("Radius (m)").fill("50")
    page.locator("#section-fleet-tracker").get_by_label("API token").fill("tok-123")
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm and install").click()

    expect(page).to_have_url(f"{base_url}/company/acme/installations")
    expect(page.locator("#installation-rows tr")).to_have_count(2)
