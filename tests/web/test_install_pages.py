"""The install pages: the plan with a generated configuration form per module, live
validation (htmx), confirmation with and without htmx, the company's installations list,
and who may see them."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Event, Installation, InstallationRevision
from portal.services.accounts import users
from portal.services.installations.installs import InstallRequest, install_module
from tests.helpers import approved_release, count, login

INVENTORY_SCHEMA = {
    "type": "object",
    "required": ["warehouse"],
    "properties": {
        "warehouse": {"type": "string", "minLength": 1, "description": "Main warehouse code"},
        "notify": {"type": "string", "format": "email"},
    },
    "additionalProperties": False,
}
PURCHASING_SCHEMA = {
    "type": "object",
    "required": ["currency", "port", "api_key"],
    "properties": {
        "currency": {"type": "string", "enum": ["EUR", "USD"], "default": "EUR"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "title": "Port"},
        "api_key": {"type": "string", "writeOnly": True},
        "approvals": {"type": "boolean", "default": False},
    },
    "additionalProperties": False,
}
GOOD = {
    "config/currency": "USD",
    "config/port": "8080",
    "config/api_key": "s3cret-key",
    "config/approvals": ["", "true"],
    "deps/inventory/warehouse": "WH1",
}


@pytest.fixture
def catalog_(app, people):
    """purchasing 1.0.0 needs inventory ^1.0.0; acme has neither installed."""
    with app.app_context():
        approved_release("inventory", "1.2.0", config_schema=INVENTORY_SCHEMA)
        approved_release(
            "purchasing", "1.0.0", deps={"inventory": "^1.0.0"}, config_schema=PURCHASING_SCHEMA
        )
        db.session.remove()
    return people


def _slot(html: str, pointer_id: str) -> str:
    """The inner HTML of the error slot with this id."""
    match = re.search(rf'id="{re.escape(pointer_id)}"[^>]*>(.*?)</div>', html, re.S)
    assert match, f"no slot {pointer_id}"
    return match.group(1)


def _installation_events(app) -> int:
    with app.app_context():
        return db.session.execute(
            sa.select(sa.func.count()).where(Event.type.like("installation.%"))
        ).scalar_one()


def _installations(app) -> dict[str, Installation]:
    with app.app_context():
        rows = db.session.execute(sa.select(Installation)).scalars().all()
        result = {i.module_name: i for i in rows}
        for inst in rows:
            _ = inst.release.version, inst.config
        db.session.expunge_all()
        return result


def test_the_plan_page_shows_the_missing_dependency_and_a_form_per_module(client, catalog_):
    login(client, catalog_.acme_admin.email)
    resp = client.get("/modules/purchasing/install")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    rows = re.findall(r'<tr data-module="([^"]+)" data-action="([^"]+)"', html)
    assert rows == [("inventory", "install"), ("purchasing", "install")]
    assert "a dependency" in html and "requested" in html
    # A section per module to install, input names prefixed per module.
    assert 'id="section-inventory"' in html and 'id="section-purchasing"' in html
    assert 'name="deps/inventory/warehouse"' in html and 'name="config/port"' in html
    assert 'name="version" value="1.0.0"' in html
    assert 'hx-post="/modules/purchasing/install/validate"' in html
    assert 'name="endpoint_url"' in html
    assert "Confirm and install" in html


def test_an_installed_dependency_is_kept_and_gets_no_form(app, client, catalog_):
    with app.app_context():
        install_module(
            InstallRequest(module="inventory", config={"warehouse": "W"}),
            actor=users.user_by_email(catalog_.acme_admin.email),
        )
    login(client, catalog_.acme_admin.email)
    html = client.get("/modules/purchasing/install").get_data(as_text=True)
    rows = re.findall(r'<tr data-module="([^"]+)" data-action="([^"]+)"', html)
    assert rows == [("inventory", "keep"), ("purchasing", "install")]
    assert 'id="section-inventory"' not in html and "already installed" in html


def test_confirming_installs_both_modules_at_revision_one(app, client, catalog_):
    login(client, catalog_.acme_admin.email)
    resp = client.post(
        "/modules/purchasing/install",
        data={**GOOD, "version": "1.0.0", "endpoint_url": "http://purchasing.acme.internal:9000"},
    )
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    assert resp.headers["Location"] == "/company/acme/installations"
    found = _installations(app)
    assert set(found) == {"inventory", "purchasing"}
    assert found["purchasing"].config == {
        "currency": "USD",
        "port": 8080,
        "api_key": "s3cret-key",
        "approvals": True,
    }
    assert found["purchasing"].endpoint_url == "http://purchasing.acme.internal:9000"
    assert found["inventory"].config == {"warehouse": "WH1"}
    assert {i.revision for i in found.values()} == {1}
    with app.app_context():
        assert count(InstallationRevision) == 2
    assert _installation_events(app) == 2
    listing = client.get(resp.headers["Location"])
    html = listing.get_data(as_text=True)
    assert "Installed purchasing 1.0.0 for Acme, with inventory 1.2.0." in html
    assert re.findall(r'<tr id="installation-\d+" data-module="([^"]+)"', html) == [
        "inventory",
        "purchasing",
    ]
    assert "s3cret-key" not in html


def test_a_bad_value_gives_422_with_the_error_beside_its_field_and_stores_nothing(
    app, client, catalog_
):
    login(client, catalog_.acme_admin.email)
    data = {**GOOD, "config/port": "70000", "deps/inventory/warehouse": "", "version": "1.0.0"}
    resp = client.post("/modules/purchasing/install", data=data)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "<html" in html  # without JavaScript: the whole page again
    assert 'data-testid="validation-failed"' in html
    assert "Port must be at most 65535" in _slot(html, "cf-config-port-errors")
    assert "is required" in _slot(html, "cf-deps-inventory-warehouse-errors")
    assert _slot(html, "cf-config-currency-errors").strip() == ""
    # What was typed stays, except the secret, which is never sent back.
    assert 'value="70000"' in html and "s3cret-key" not in html
    with app.app_context():
        assert count(Installation) == 0 and count(InstallationRevision) == 0
    assert _installation_events(app) == 0


def test_live_validation_answers_out_of_band_error_slots(app, htmx_client, catalog_):
    login(htmx_client, catalog_.acme_admin.email)
    data = {"config/port": "0", "version": "1.0.0"}
    resp = htmx_client.post("/modules/purchasing/install/validate", data=data)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in html
    assert "HX-Request" in resp.headers.get("Vary", "")
    assert 'data-testid="validation-failed"' in html
    port = _slot(html, "cf-config-port-errors")
    assert "Port must be at least 1" in port
    assert 'id="cf-config-port-errors" class="error-slot" hx-swap-oob="innerHTML"' in html
    # Fields not filled in yet are not scolded while typing; their slots are emptied.
    assert _slot(html, "cf-config-api_key-errors").strip() == ""
    assert _slot(html, "cf-deps-inventory-warehouse-errors").strip() == ""
    fixed = htmx_client.post(
        "/modules/purchasing/install/validate", data={**GOOD, "version": "1.0.0"}
    )
    fixed_html = fixed.get_data(as_text=True)
    assert _slot(fixed_html, "cf-config-port-errors").strip() == ""
    assert 'data-testid="validation-ok"' in fixed_html
    with app.app_context():
        assert count(Installation) == 0


def test_confirming_with_htmx_redirects_or_answers_the_slots(app, htmx_client, catalog_):
    login(htmx_client, catalog_.acme_admin.email)
    bad = htmx_client.post(
        "/modules/purchasing/install",
        data={**GOOD, "deps/inventory/notify": "nobody", "version": "1.0.0"},
    )
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "<html" not in html
    assert "email address" in _slot(html, "cf-deps-inventory-notify-errors")
    with app.app_context():
        assert count(Installation) == 0
    ok = htmx_client.post("/modules/purchasing/install", data={**GOOD, "version": "1.0.0"})
    assert ok.status_code == 200
    assert ok.headers["HX-Redirect"] == "/company/acme/installations"
    assert set(_installations(app)) == {"inventory", "purchasing"}


def test_a_bad_endpoint_url_shows_beside_its_field(app, htmx_client, catalog_):
    login(htmx_client, catalog_.acme_admin.email)
    resp = htmx_client.post(
        "/modules/purchasing/install",
        data={**GOOD, "endpoint_url": "ftp://example.com", "version": "1.0.0"},
    )
    assert resp.status_code == 422
    assert "http(s) URL" in _slot(resp.get_data(as_text=True), "endpoint_url-errors")
    with app.app_context():
        assert count(Installation) == 0


def test_without_a_plan_the_page_explains_why(app, client, people):
    with app.app_context():
        approved_release("inventory", "1.2.0")
        approved_release("purchasing", "1.0.0", deps={"inventory": "^2.0.0"})
    login(client, people.acme_admin.email)
    resp = client.get("/modules/purchasing/install")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert 'data-testid="no-plan"' in html
    assert "purchasing 1.0.0 needs inventory ^2.0.0" in html
    assert "Confirm and install" not in html


def test_an_installed_module_says_so_with_a_link_to_the_installations(app, client, catalog_):
    with app.app_context():
        install_module(
            InstallRequest(module="inventory", config={"warehouse": "W"}),
            actor=users.user_by_email(catalog_.acme_admin.email),
        )
    login(client, catalog_.acme_admin.email)
    resp = client.get("/modules/inventory/install")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'data-testid="installed-already"' in html
    assert 'href="/company/acme/installations"' in html
    assert "Confirm and install" not in html


def test_a_platform_admin_picks_the_company_then_installs_for_it(app, client, catalog_):
    login(client, catalog_.admin.email)
    picker = client.get("/modules/purchasing/install").get_data(as_text=True)
    assert 'name="company"' in picker and '<option value="acme"' in picker
    assert "Confirm and install" not in picker
    page = client.get("/modules/purchasing/install?company=acme").get_data(as_text=True)
    assert 'type="hidden" name="company" value="acme"' in page
    resp = client.post(
        "/modules/purchasing/install", data={**GOOD, "version": "1.0.0", "company": "acme"}
    )
    assert resp.status_code == 303
    assert set(_installations(app)) == {"inventory", "purchasing"}
    assert client.get("/company/acme/installations").status_code == 200


def test_the_installations_page_is_for_the_company_and_platform_admins(app, client, catalog_):
    with app.app_context():
        install_module(
            InstallRequest(module="inventory", config={"warehouse": "W"}),
            actor=users.user_by_email(catalog_.acme_admin.email),
        )
    cases = [
        (catalog_.acme_admin.email, 200),
        (catalog_.admin.email, 200),
        (catalog_.globex_admin.email, 404),
        (catalog_.developer.email, 403),
    ]
    for email, status in cases:
        other = app.test_client()
        login(other, email)
        resp = other.get("/company/acme/installations")
        assert resp.status_code == status, email
        if status == 200:
            html = resp.get_data(as_text=True)
            assert 'data-module="inventory"' in html and 'data-testid="health"' in html
    login(client, catalog_.acme_admin.email)
    assert client.get("/company/nowhere/installations").status_code == 404


def test_the_installations_list_block_is_a_fragment_for_htmx(htmx_client, catalog_):
    login(htmx_client, catalog_.acme_admin.email)
    resp = htmx_client.get("/company/acme/installations")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in html
    assert 'data-testid="installation-count"' in html and "0 installed modules" in html


def test_developers_and_other_companies_cannot_install(app, client, catalog_):
    login(client, catalog_.developer.email)
    assert client.get("/modules/purchasing/install").status_code == 403
    assert client.post("/modules/purchasing/install", data=GOOD).status_code == 403
    other = app.test_client()
    login(other, catalog_.globex_admin.email)
    assert other.get("/modules/purchasing/install?company=acme").status_code == 404
    with app.app_context():
        approved_release("secret-tool", visibility="private")
    assert other.get("/modules/secret-tool/install").status_code == 404
    with app.app_context():
        assert count(Installation) == 0


def test_a_live_check_arriving_after_the_install_changes_nothing(app, htmx_client, catalog_):
    login(htmx_client, catalog_.acme_admin.email)
    data = {**GOOD, "version": "1.0.0"}
    assert htmx_client.post("/modules/purchasing/install", data=data).status_code == 200
    late = htmx_client.post("/modules/purchasing/install/validate", data=data)
    assert late.status_code == 204 and late.get_data() == b""
