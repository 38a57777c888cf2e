"""The company's control room in the browser: a company admin changes a setting of an
installed module, upgrades it, looks at the history and its diff, rolls back to the first
revision, uninstalls a module another one depends on with the cascade, then installs it
again and finds its old configuration. Every step happens in place (htmx), without a reload,
until the reinstall leads to the install page. Without JavaScript the same changes work
through plain forms and redirects."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import Installation
from portal.services.accounts import users
from portal.services.installations.installs import InstallRequest, install_module
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.pages import mark_page, open_from_nav, page_was_not_reloaded, sign_in
from tests.helpers import approved_release

COMPANY_ADMIN = "admin@acme.example.com"
HUB, PLANNER = "dispatch-hub", "route-planner"
TOKEN = "tok-journey-5521"
HUB_SCHEMA = {
    "type": "object",
    "required": ["region", "api_token"],
    "properties": {
        "region": {"type": "string", "title": "Region", "enum": ["eu", "us"]},
        "max_stops": {"type": "integer", "title": "Maximum stops", "minimum": 1, "default": 20},
        "api_token": {"type": "string", "title": "API token", "writeOnly": True},
    },
    "additionalProperties": False,
}


@pytest.fixture
def fleet(app, demo_people):
    """acme runs dispatch-hub 1.0.0 (1.1.0 is out) and route-planner, which needs it."""
    with app.app_context():
        people = {"actor_email": "dev@acme.example.com", "admin_email": "admin@example.com"}
        approved_release(HUB, "1.0.0", config_schema=HUB_SCHEMA, **people)
        approved_release(HUB, "1.1.0", config_schema=HUB_SCHEMA, **people)
        approved_release(PLANNER, "1.0.0", deps={HUB: "^1.0.0"}, **people)
        admin = users.user_by_email(COMPANY_ADMIN)
        config = {"region": "eu", "max_stops": 20, "api_token": TOKEN}
        hub, _ = install_module(
            InstallRequest(module=HUB, version="=1.0.0", config=config), actor=admin
        )
        install_module(InstallRequest(module=PLANNER), actor=admin)
        hub_id = hub.id
        db.session.remove()
    return hub_id


def _stored(app, installation_id: int) -> tuple[str, int, str, dict]:
    with app.app_context():
        inst = db.session.get(Installation, installation_id)
        found = (inst.status, inst.revision, inst.release.version, dict(inst.config))
        db.session.remove()
    return found


def _row(page, name: str):
    return page.locator(f'#installation-rows tr[data-module="{name}"]')


def _revision(page, number: int):
    return page.locator(f"#installation-panel li.revision#revision-{number}")


def test_a_company_admin_lives_with_an_installed_module(page, base_url, app, fleet):
    dialogs: list[str] = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    sign_in(page, base_url, COMPANY_ADMIN)
    open_from_nav(page, "Installations")
    expect(page).to_have_url(f"{base_url}/company/acme/installations")
    hub, planner = _row(page, HUB), _row(page, PLANNER)
    expect(hub.get_by_test_id("version")).to_have_text("1.0.0")
    expect(hub.get_by_test_id("upgrade-available")).to_contain_text("upgrade available: 1.1.0")
    mark_page(page)
    panel = page.locator("#installation-panel")

    # 1. Change a setting: the form holds the current values; the secret shows as set.
    hub.get_by_role("link", name=f"Configure {HUB}").click()
    form = panel.get_by_test_id("configure-panel")
    expect(form.get_by_role("heading", name=f"Configure {HUB} 1.0.0")).to_be_focused()
    expect(form.get_by_label("Region")).to_have_value("eu")
    stops = form.get_by_label("Maximum stops")
    expect(stops).to_have_value("20")
    expect(form.get_by_label("API token")).to_have_value("")
    expect(form.get_by_test_id("secret-set")).to_have_text("set — leave blank to keep")
    assert TOKEN not in page.content()
    stops.fill("0")
    expect(page.locator("#cf-config-max_stops-errors")).to_contain_text("must be at least 1")
    stops.fill("40")
    expect(page.locator("#cf-config-max_stops-errors")).to_be_empty()
    form.get_by_role("button", name="Save changes").click()
    expect(page.locator("#flash")).to_contain_text(f"Saved {HUB}: revision 2.")
    expect(panel.get_by_test_id("configure-panel")).to_have_count(0)
    expect(hub.get_by_test_id("revision")).to_have_text("2")
    assert _stored(app, fleet)[1:] == (
        2,
        "1.0.0",
        {"region": "eu", "max_stops": 40, "api_token": TOKEN},
    )
    assert page_was_not_reloaded(page)

    # 2. Upgrade: the plan first, then the confirmation.
    hub.get_by_test_id("upgrade-available").click()
    steps = panel.get_by_test_id("version-plan-steps")
    expect(steps.locator(f'tr[data-module="{HUB}"]')).to_contain_text("1.1.0")
    expect(steps.locator(f'tr[data-module="{HUB}"]')).to_contain_text("from 1.0.0")
    panel.get_by_role("button", name="Upgrade to 1.1.0").click()
    expect(page.locator("#flash")).to_contain_text(f"Moved {HUB} from 1.0.0 to 1.1.0: revision 3.")
    expect(hub.get_by_test_id("version")).to_have_text("1.1.0")
    expect(hub.get_by_test_id("revision")).to_have_text("3")
    expect(hub.get_by_test_id("upgrade-available")).to_have_count(0)
    assert dialogs[-1] == f"Upgrade {HUB} from 1.0.0 to 1.1.0?"
    assert page_was_not_reloaded(page)

    # 3. The history and its diffs; the secret never shows.
    hub.get_by_role("link", name=f"History {HUB}").click()
    history = panel.get_by_test_id("history-panel")
    expect(history.locator("li.revision")).to_have_count(3)
    expect(_revision(page, 3).get_by_test_id("revision-reason")).to_have_text("upgrade")
    expect(_revision(page, 3).locator('tr[data-what="version"]')).to_contain_text(
        re.compile(r"1\.0\.0\s*1\.1\.0")
    )
    setting = _revision(page, 2).locator('tr[data-what="/max_stops"]')
    expect(setting).to_contain_text(re.compile(r"20\s*40"))
    expect(_revision(page, 1).locator('tr[data-what="/api_token"]')).to_contain_text("secret set")
    assert TOKEN not in page.content()

    # 4. Roll back to the first revision: its version and configuration, as revision 4.
    _revision(page, 1).get_by_role("button", name="Roll back to this revision").click()
    expect(page.locator("#flash")).to_contain_text(
        f"Rolled {HUB} back to revision 1: now revision 4, version 1.0.0."
    )
    expect(history.locator("li.revision")).to_have_count(4)
    expect(_revision(page, 4).get_by_test_id("revision-reason")).to_have_text("rollback")
    expect(_revision(page, 4).get_by_test_id("current")).to_be_visible()
    expect(_revision(page, 4).locator('tr[data-what="/max_stops"]')).to_contain_text(
        re.compile(r"40\s*20")
    )
    expect(hub.get_by_test_id("version")).to_have_text("1.0.0")
    expect(hub.get_by_test_id("revision")).to_have_text("4")
    assert _stored(app, fleet)[1:] == (
        4,
        "1.0.0",
        {"region": "eu", "max_stops": 20, "api_token": TOKEN},
    )
    assert page_was_not_reloaded(page)

    # 5. Uninstall it with the module that depends on it: named first, then the cascade.
    hub.get_by_role("link", name=f"Uninstall {HUB}").click()
    confirm = panel.get_by_test_id("uninstall-panel")
    expect(confirm.get_by_test_id("dependents")).to_contain_text(PLANNER)
    confirm.get_by_role("button", name=f"Uninstall {HUB} and {PLANNER}").click()
    expect(page.locator("#flash")).to_contain_text(f"Uninstalled {PLANNER} 1.0.0, {HUB} 1.0.0.")
    expect(hub).to_have_count(0)
    expect(planner).to_have_count(0)
    expect(page.get_by_test_id("installation-count")).to_have_text("0 installed modules")
    expect(page.get_by_test_id("installation-count")).to_be_focused()
    previous = page.get_by_test_id("previously-installed")
    expect(previous.locator("tr[data-module]")).to_have_count(2)
    assert dialogs[-1].startswith(f"Uninstall {PLANNER}, {HUB}?")
    assert page_was_not_reloaded(page)

    # 6. Install it again: the form starts from the old configuration.
    with page.expect_navigation():
        previous.locator(f'tr[data-module="{HUB}"]').get_by_role(
            "link", name=f"Reinstall {HUB}"
        ).click()
    expect(page).to_have_url(f"{base_url}/modules/{HUB}/install")
    section = page.locator(f"#section-{HUB}")
    expect(section.get_by_test_id("previous-config")).to_be_visible()
    expect(section.get_by_label("Region")).to_have_value("eu")
    expect(section.get_by_label("Maximum stops")).to_have_value("20")
    expect(section.get_by_test_id("secret-set")).to_be_visible()
    assert TOKEN not in page.content()
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm and install").click()
    expect(page).to_have_url(f"{base_url}/company/acme/installations")
    expect(page.locator("#flash")).to_contain_text(f"Installed {HUB} 1.1.0 for Acme Corporation")
    expect(_row(page, HUB).get_by_test_id("revision")).to_have_text("5")
    status, revision, version, config = _stored(app, fleet)  # the same record, continued
    assert (status, revision, version) == ("installed", 5, "1.1.0")
    assert config == {"region": "eu", "max_stops": 20, "api_token": TOKEN}


def test_the_same_changes_work_without_javascript(new_context, base_url, app, fleet):
    context = new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, base_url, COMPANY_ADMIN)
    page.goto(f"{base_url}/company/acme/installations")
    hub = _row(page, HUB)

    with page.expect_navigation():
        hub.get_by_role("link", name=f"Configure {HUB}").click()
    expect(page).to_have_url(re.compile(rf"/company/acme/installations/{fleet}/configure$"))
    page.get_by_label("Maximum stops").fill("33")
    with page.expect_navigation():
        page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#flash")).to_contain_text(f"Saved {HUB}: revision 2.")
    expect(hub.get_by_test_id("revision")).to_have_text("2")

    with page.expect_navigation():
        hub.get_by_role("link", name=f"Change version {HUB}").click()
    page.get_by_label("Version", exact=True).select_option("1.1.0")
    with page.expect_navigation():
        page.get_by_role("button", name="Show the plan").click()
    expect(page.get_by_test_id("version-plan-steps")).to_contain_text("1.1.0")
    with page.expect_navigation():
        page.get_by_role("button", name="Upgrade to 1.1.0").click()
    expect(hub.get_by_test_id("version")).to_have_text("1.1.0")

    with page.expect_navigation():
        hub.get_by_role("link", name=f"History {HUB}").click()
    with page.expect_navigation():
        _revision(page, 1).get_by_role("button", name="Roll back to this revision").click()
    expect(page).to_have_url(re.compile(rf"/company/acme/installations/{fleet}/history$"))
    expect(_revision(page, 4).get_by_test_id("current")).to_be_visible()

    with page.expect_navigation():
        page.goto(f"{base_url}/company/acme/installations")
    with page.expect_navigation():
        hub.get_by_role("link", name=f"Uninstall {HUB}").click()
    with page.expect_navigation():
        page.get_by_role("button", name=f"Uninstall {HUB} and {PLANNER}").click()
    expect(page.get_by_test_id("installation-count")).to_have_text("0 installed modules")
    assert _stored(app, fleet)[0] == "uninstalled"
