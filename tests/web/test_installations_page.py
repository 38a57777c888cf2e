"""The company's control room at /company/<slug>/installations: the HTMX contract of every
panel and fragment, another company's installation answering exactly like an absent one,
secrets that never show, stale revisions (409), the version plan before the change (409
naming the dependent that would break), history with diffs and rollback, uninstall naming
the dependents and the cascade, reinstalling from the last configuration, the polled health
badges, and every form without JavaScript (303)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Company, Installation, InstallationRevision, ModuleRelease
from portal.models.base import utcnow
from portal.services.accounts import users
from portal.services.health.records import record_health
from portal.services.installations import lifecycle
from portal.services.installations.installs import InstallRequest, install_module
from portal.services.uow import unit_of_work
from tests.helpers import (
    approved_release,
    bulk_modules,
    captured_statements,
    installation_state,
    login,
)

SECRET = "s3cr3t-Value-9931"
NEW_SECRET = "n3w-s3cr3t-4412"
LEDGER_SCHEMA = {
    "type": "object",
    "required": ["currency", "api_key"],
    "properties": {
        "currency": {"type": "string", "title": "Currency", "enum": ["EUR", "USD", "GBP"]},
        "limit": {"type": "integer", "title": "Limit", "minimum": 0, "maximum": 1000},
        "api_key": {"type": "string", "title": "API key", "writeOnly": True},
    },
    "additionalProperties": False,
}
ACME_ADMIN, GLOBEX_ADMIN, ADMIN = "admin@acme.test", "admin@globex.test", "admin@example.com"
ROOT = "/company/acme/installations"
MISSING_ID = 987654


@pytest.fixture
def room(app, people):
    """acme: ledger installed at 1.0.0 (revision 1), moved to 1.1.0 (revision 2), and billing,
    which needs ledger ^1.1.0. globex: its own ledger. ledger 1.2.0 and 2.0.0 exist too."""
    with app.app_context():
        for version in ("1.0.0", "1.1.0", "1.2.0", "2.0.0"):
            approved_release("ledger", version, config_schema=LEDGER_SCHEMA)
        approved_release("billing", "1.0.0", deps={"ledger": "^1.1.0"})
        acme = users.user_by_email(ACME_ADMIN)
        config = {"currency": "EUR", "limit": 10, "api_key": SECRET}
        ledger, _ = install_module(
            InstallRequest(module="ledger", version="=1.0.0", config=config), actor=acme
        )
        lifecycle.update_installation(ledger.id, {"version": "1.1.0"}, actor=acme)
        billing, _ = install_module(InstallRequest(module="billing"), actor=acme)
        globex, _ = install_module(
            InstallRequest(module="ledger", config={"currency": "GBP", "api_key": "other"}),
            actor=users.user_by_email(GLOBEX_ADMIN),
        )
        ids = {"ledger": ledger.id, "billing": billing.id, "globex": globex.id}
        db.session.remove()
    return ids


@pytest.fixture
def acme_client(app, room):
    client = app.test_client()
    login(client, ACME_ADMIN)
    return client


@pytest.fixture
def acme_htmx(htmx_client, room):
    login(htmx_client, ACME_ADMIN)
    return htmx_client


def _inst(app, installation_id: int) -> Installation:
    with app.app_context():
        inst = db.session.get(Installation, installation_id)
        db.session.expunge(inst)
        db.session.remove()
    return inst


def _config(app, installation_id: int) -> tuple[int, str, dict]:
    """(revision, version, stored configuration) of an installation."""
    with app.app_context():
        inst = db.session.get(Installation, installation_id)
        result = (inst.revision, inst.release.version, dict(inst.config))
        db.session.remove()
    return result


def _html(resp) -> str:
    return resp.get_data(as_text=True)


def _row(html: str, installation_id: int) -> str:
    match = re.search(rf'<tr id="installation-{installation_id}".*?</tr>', html, re.S)
    assert match, f"no row for installation {installation_id}"
    return match.group(0)


def _configure_form(revision: int, **values) -> dict:
    form = {"revision": str(revision), "config/currency": "EUR", "config/limit": "10"}
    form["config/api_key"] = ""
    form.update({f"config/{k}": v for k, v in values.items() if k != "endpoint_url"})
    form["endpoint_url"] = values.get("endpoint_url", "")
    return form


# --- The page --------------------------------------------------------------------------------


def test_the_page_shows_each_module_with_version_status_health_revision_and_actions(
    app, acme_client, room
):
    with app.app_context():
        inst = db.session.get(Installation, room["ledger"])
        with unit_of_work():
            record_health(inst, "degraded", "200 OK, slow: 2100 ms", 2100, "check")
        db.session.remove()
    html = _html(acme_client.get(ROOT))
    row = _row(html, room["ledger"])
    assert 'data-testid="version">1.1.0<' in row and 'data-testid="revision">2<' in row
    assert 'data-status="degraded"' in row
    # The message and time: in the title and in the tooltip the badge is described by.
    assert re.search(
        r'title="200 OK, slow: 2100 ms · checked \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"', row
    )
    tip = f'id="health-{room["ledger"]}-tip"'
    assert tip in row and f'aria-describedby="health-{room["ledger"]}-tip"' in row
    assert 'tabindex="0"' in row  # reachable by keyboard, so the tooltip shows on focus
    for action in ("configure", "version", "history", "uninstall"):
        assert f"{ROOT}/{room['ledger']}/{action}" in row
    assert 'id="health-poller"' in html and 'hx-trigger="every 10s"' in html


def test_upgrade_available_names_the_newest_version_every_dependent_accepts(app, acme_client, room):
    html = _html(acme_client.get(ROOT))
    ledger = _row(html, room["ledger"])
    # 2.0.0 is newer, but billing needs ledger ^1.1.0: 1.2.0 is the one on offer.
    assert "upgrade available: 1.2.0" in ledger and "2.0.0" not in ledger
    assert f"{ROOT}/{room['ledger']}/version?version=1.2.0" in ledger
    billing = _row(html, room["billing"])
    assert "upgrade available" not in billing


def test_upgrade_available_costs_a_bounded_number_of_statements(app, people):
    """Past the resolver budget, more modules with upgrades add no statements."""
    acme = None

    def add(names):
        nonlocal acme
        with app.app_context():
            acme = users.user_by_email(ACME_ADMIN)
            for name in names:
                approved_release(name, "1.0.0")
                approved_release(name, "1.1.0")
                install_module(InstallRequest(module=name, version="=1.0.0"), actor=acme)
            db.session.remove()

    client = app.test_client()
    login(client, ACME_ADMIN)
    add([f"mod-{i}" for i in range(6)])
    client.get(ROOT)
    few = len(_statements(app, client, ROOT))
    add([f"mod-{i}" for i in range(6, 12)])
    many = len(_statements(app, client, ROOT))
    assert few == many, (few, many)
    assert _html(client.get(ROOT)).count("upgrade available: 1.1.0") == 12


def test_the_htmx_list_block_and_every_panel_are_fragments_that_vary_on_hx_request(acme_htmx, room):
    one = f"{ROOT}/{room['ledger']}"
    paths = [
        ROOT,
        f"{ROOT}/health",
        f"{one}/configure",
        f"{one}/version",
        f"{one}/version?version=1.2.0",
        f"{one}/history",
        f"{one}/uninstall",
    ]
    for path in paths:
        resp = acme_htmx.get(path)
        assert resp.status_code == 200, path
        assert "<html" not in _html(resp), path
        assert "HX-Request" in resp.headers.get("Vary", ""), path


def test_without_javascript_every_panel_is_a_page_with_the_list(acme_client, room):
    one = f"{ROOT}/{room['ledger']}"
    for path, testid in (
        (f"{one}/configure", "configure-panel"),
        (f"{one}/version", "version-panel"),
        (f"{one}/history", "history-panel"),
        (f"{one}/uninstall", "uninstall-panel"),
    ):
        html = _html(acme_client.get(path))
        assert "<html" in html and f'data-testid="{testid}"' in html, path
        assert 'id="installation-rows"' in html, path


# --- Another company's installation: exactly like an absent one -----------------------------


def _endpoints(installation_id: int) -> list[tuple[str, str, dict]]:
    one = f"{ROOT}/{installation_id}"
    return [
        ("GET", f"{one}/configure", {}),
        ("POST", f"{one}/configure", {"data": _configure_form(1, currency="USD")}),
        ("POST", f"{one}/configure/validate", {"data": _configure_form(1)}),
        ("GET", f"{one}/version", {}),
        ("GET", f"{one}/version?version=1.0.0", {}),
        ("POST", f"{one}/version", {"data": {"version": "1.0.0", "revision": "1"}}),
        ("GET", f"{one}/history", {}),
        ("POST", f"{one}/rollback", {"data": {"revision": "1"}}),
        ("GET", f"{one}/uninstall", {}),
        ("POST", f"{one}/uninstall", {"data": {"cascade": "true"}}),
    ]


def _normalized(resp) -> bytes:
    """The body with the per-request CSRF token blanked (it carries a timestamp)."""
    return re.sub(rb'("X-CSRFToken": "|name="csrf_token" value=")[^"]*', rb"\1", resp.get_data())


def _headers(resp) -> dict:
    """Every header but the session cookie (set once the CSRF token is first made)."""
    return {k: v for k, v in resp.headers.items() if k != "Set-Cookie"}


@pytest.mark.parametrize("as_htmx", [False, True], ids=["page", "htmx"])
def test_another_companys_installation_is_answered_like_a_missing_one(
    app, acme_client, acme_htmx, room, as_htmx
):
    client = acme_htmx if as_htmx else acme_client
    before = installation_state(app)
    for (method, path, kwargs), (_m, missing_path, _k) in zip(
        _endpoints(room["globex"]), _endpoints(MISSING_ID), strict=True
    ):
        theirs = client.open(path, method=method, **kwargs)
        absent = client.open(missing_path, method=method, **kwargs)
        assert theirs.status_code == absent.status_code == 404, path
        assert _normalized(theirs) == _normalized(absent), path
        assert _headers(theirs) == _headers(absent), path
    assert installation_state(app) == before


def test_a_platform_admin_naming_the_wrong_company_gets_the_same_404(app, room):
    client = app.test_client()
    login(client, ADMIN)
    wrong = client.get(f"/company/acme/installations/{room['globex']}/configure")
    absent = client.get(f"/company/acme/installations/{MISSING_ID}/configure")
    assert wrong.status_code == absent.status_code == 404
    assert _normalized(wrong) == _normalized(absent)
    assert (
        client.get(f"/company/globex/installations/{room['globex']}/configure").status_code == 200
    )


def test_other_companies_and_developers_cannot_poll_the_badges(app, room):
    other = app.test_client()
    login(other, GLOBEX_ADMIN)
    assert other.get(f"{ROOT}/health").status_code == 404
    dev = app.test_client()
    login(dev, "dev@acme.test")
    assert dev.get(f"{ROOT}/health").status_code == 403


# --- Configure --------------------------------------------------------------------------------


def test_the_configure_form_is_filled_with_the_current_values_and_the_revision(acme_client, room):
    html = _html(acme_client.get(f"{ROOT}/{room['ledger']}/configure"))
    assert '<option value="EUR" selected>' in html
    assert 'name="config/limit"' in html and 'value="10"' in html
    assert 'type="hidden" name="revision" value="2"' in html
    assert 'data-testid="secret-set"' in html  # the secret shows as set...
    assert SECRET not in html and "********" not in html  # ...and is never revealed


def test_saving_the_form_without_javascript_makes_a_revision_and_keeps_a_blank_secret(
    app, acme_client, room
):
    resp = acme_client.post(
        f"{ROOT}/{room['ledger']}/configure",
        data=_configure_form(2, currency="USD", limit="25", endpoint_url="http://10.1.2.3:9000"),
    )
    assert resp.status_code == 303
    assert resp.headers["Location"] == f"{ROOT}#installation-{room['ledger']}"
    revision, version, config = _config(app, room["ledger"])
    assert (revision, version) == (3, "1.1.0")
    assert config == {"currency": "USD", "limit": 25, "api_key": SECRET}
    assert _inst(app, room["ledger"]).endpoint_url == "http://10.1.2.3:9000"
    assert "Saved ledger: revision 3." in _html(acme_client.get(ROOT))


def test_saving_with_htmx_closes_the_panel_and_sends_the_list_out_of_band(app, acme_htmx, room):
    resp = acme_htmx.post(
        f"{ROOT}/{room['ledger']}/configure", data=_configure_form(2, api_key=NEW_SECRET)
    )
    html = _html(resp)
    assert resp.status_code == 200 and "<html" not in html
    assert '<div id="installations" hx-swap-oob="innerHTML">' in html
    assert 'id="flash" class="flash-area" hx-swap-oob="innerHTML"' in html
    assert 'data-testid="configure-panel"' not in html  # the panel closes
    assert f'id="installation-{room["ledger"]}-name" href' in html and "autofocus" in html
    assert NEW_SECRET not in html
    assert _config(app, room["ledger"])[2]["api_key"] == NEW_SECRET


def test_a_form_based_on_a_stale_revision_is_a_409_and_nothing_changes(app, acme_client, room):
    acme_client.post(f"{ROOT}/{room['ledger']}/configure", data=_configure_form(2, limit="11"))
    before = installation_state(app)
    resp = acme_client.post(
        f"{ROOT}/{room['ledger']}/configure", data=_configure_form(2, currency="GBP")
    )
    html = _html(resp)
    assert resp.status_code == 409
    assert 'data-testid="conflict"' in html and "revision 3, not 2" in html
    assert "Load revision 3" in html
    assert installation_state(app) == before
    assert _config(app, room["ledger"])[2]["currency"] == "EUR"


def test_invalid_values_and_endpoint_show_their_reasons_beside_the_fields(app, acme_htmx, room):
    before = installation_state(app)
    resp = acme_htmx.post(
        f"{ROOT}/{room['ledger']}/configure",
        data=_configure_form(2, limit="5000", endpoint_url="ftp://files.example"),
    )
    html = _html(resp)
    assert resp.status_code == 422 and "<html" not in html
    slot = re.search(r'id="endpoint_url-errors"[^>]*>(.*?)</div>', html, re.S).group(1)
    assert "Endpoint URL must be an http(s) URL with a host" in slot
    assert 'value="ftp://files.example"' in html  # what was typed stays
    assert installation_state(app) == before
    resp = acme_htmx.post(
        f"{ROOT}/{room['ledger']}/configure", data=_configure_form(2, limit="5000")
    )
    slot = re.search(r'id="cf-config-limit-errors"[^>]*>(.*?)</div>', _html(resp), re.S).group(1)
    assert resp.status_code == 422 and "Limit must be at most 1000" in slot
    assert installation_state(app) == before


def test_an_endpoint_the_outbound_guard_refuses_is_422_with_the_reason(app, acme_client, room):
    before = installation_state(app)
    resp = acme_client.post(
        f"{ROOT}/{room['ledger']}/configure",
        data=_configure_form(2, endpoint_url="http://169.254.169.254/latest"),
    )
    slot = re.search(r'id="endpoint_url-errors"[^>]*>(.*?)</div>', _html(resp), re.S).group(1)
    assert resp.status_code == 422 and "169.254.169.254" in slot
    assert installation_state(app) == before


def test_live_validation_fills_the_error_slots_and_changes_nothing(app, acme_htmx, room):
    before = installation_state(app)
    resp = acme_htmx.post(
        f"{ROOT}/{room['ledger']}/configure/validate", data=_configure_form(2, limit="-1")
    )
    html = _html(resp)
    assert resp.status_code == 200 and 'data-testid="validation-failed"' in html
    assert re.search(
        r'id="cf-config-limit-errors"[^>]*hx-swap-oob="innerHTML">.*at least 0', html, re.S
    )
    resp = acme_htmx.post(f"{ROOT}/{room['ledger']}/configure/validate", data=_configure_form(2))
    assert "Looks good: save to apply." in _html(resp)
    assert installation_state(app) == before


# --- Upgrade and downgrade -------------------------------------------------------------------


def test_the_plan_is_shown_before_an_upgrade_and_the_confirmation_applies_it(
    app, acme_client, room
):
    before = installation_state(app)
    resp = acme_client.get(f"{ROOT}/{room['ledger']}/version?version=1.2.0")
    html = _html(resp)
    assert resp.status_code == 200 and 'data-testid="version-plan-steps"' in html
    assert re.search(
        r'<tr data-module="ledger" data-action="upgrade">\s*<td>ledger</td>\s*<td>1.2.0</td>', html
    )
    assert 'name="version" value="1.2.0"' in html and 'name="revision" value="2"' in html
    assert "Upgrade to 1.2.0" in html
    assert '<option value="2.0.0">' in html and "1.1.0 (installed)" in html
    assert installation_state(app) == before  # seeing the plan changes nothing
    resp = acme_client.post(
        f"{ROOT}/{room['ledger']}/version", data={"version": "1.2.0", "revision": "2"}
    )
    assert resp.status_code == 303
    assert _config(app, room["ledger"])[:2] == (3, "1.2.0")
    assert "Moved ledger from 1.1.0 to 1.2.0: revision 3." in _html(acme_client.get(ROOT))


@pytest.mark.parametrize("version", ["2.0.0", "1.0.0"])
def test_a_version_that_breaks_a_dependent_is_a_409_naming_it(app, acme_client, room, version):
    before = installation_state(app)
    resp = acme_client.get(f"{ROOT}/{room['ledger']}/version?version={version}")
    html = _html(resp)
    assert resp.status_code == 409 and 'data-testid="plan-refused"' in html
    assert "billing 1.0.0" in html and "^1.1.0" in html
    assert "to " + version + "</button>" not in html  # nothing to confirm
    resp = acme_client.post(
        f"{ROOT}/{room['ledger']}/version", data={"version": version, "revision": "2"}
    )
    assert resp.status_code == 409 and "billing" in _html(resp)
    assert installation_state(app) == before


def test_a_version_change_based_on_a_stale_revision_is_a_409(app, acme_htmx, room):
    before = installation_state(app)
    resp = acme_htmx.post(
        f"{ROOT}/{room['ledger']}/version", data={"version": "1.2.0", "revision": "1"}
    )
    html = _html(resp)
    assert resp.status_code == 409 and "<html" not in html
    assert "revision 2, not 1" in html
    assert 'name="revision" value="2"' in html  # the fresh plan can be confirmed
    assert installation_state(app) == before


def test_an_unknown_version_is_a_422(acme_client, room):
    resp = acme_client.get(f"{ROOT}/{room['ledger']}/version?version=not-a-version")
    assert resp.status_code == 422 and 'data-testid="plan-refused"' in _html(resp)
    resp = acme_client.get(f"{ROOT}/{room['ledger']}/version?version=9.9.9")
    assert resp.status_code == 422


# --- History, diffs and rollback -------------------------------------------------------------


def _revision(html: str, number: int) -> str:
    match = re.search(rf'<li class="revision" id="revision-{number}".*?</li>', html, re.S)
    assert match, f"no revision {number}"
    return match.group(0)


def test_history_lists_revisions_with_their_diffs_and_secrets_only_as_changed(
    app, acme_client, room
):
    acme_client.post(
        f"{ROOT}/{room['ledger']}/configure",
        data=_configure_form(2, currency="USD", api_key=NEW_SECRET),
    )
    html = _html(acme_client.get(f"{ROOT}/{room['ledger']}/history"))
    first, second, third = (_revision(html, n) for n in (1, 2, 3))
    assert "1.0.0" in first and ">install<" in first and ACME_ADMIN in first
    assert 'data-what="/currency" data-kind="added"' in first
    assert re.search(r'data-what="version".*?1\.0\.0.*?1\.1\.0', second, re.S)
    assert ">upgrade<" in second and "Roll back to this revision" in second
    change = re.search(r'data-what="/currency".*?</tr>', third, re.S).group(0)
    assert "EUR" in change and "USD" in change
    secret = re.search(r'data-what="/api_key".*?</tr>', third, re.S).group(0)
    assert "secret changed" in secret
    assert 'data-testid="current"' in third and "Roll back to this revision" not in third
    for text in (SECRET, NEW_SECRET, "********"):
        assert text not in html


def test_rolling_back_restores_an_earlier_revision_as_a_new_one(app, acme_client, room):
    acme_client.post(f"{ROOT}/{room['ledger']}/configure", data=_configure_form(2, currency="USD"))
    resp = acme_client.post(f"{ROOT}/{room['ledger']}/rollback", data={"revision": "2"})
    assert resp.status_code == 303
    assert resp.headers["Location"] == f"{ROOT}/{room['ledger']}/history"
    revision, version, config = _config(app, room["ledger"])
    assert (revision, version, config["currency"]) == (4, "1.1.0", "EUR")
    html = _html(acme_client.get(resp.headers["Location"]))
    assert "Rolled ledger back to revision 2: now revision 4, version 1.1.0." in html
    assert ">rollback<" in _revision(html, 4)


def test_rolling_back_without_a_revision_restores_the_one_before_and_says_which(
    app, acme_client, room
):
    acme_client.post(f"{ROOT}/{room['ledger']}/configure", data=_configure_form(2, currency="USD"))
    resp = acme_client.post(f"{ROOT}/{room['ledger']}/rollback", data={"expected_revision": "3"})
    assert resp.status_code == 303
    revision, version, config = _config(app, room["ledger"])
    assert (revision, version, config["currency"]) == (4, "1.1.0", "EUR")
    html = _html(acme_client.get(resp.headers["Location"]))
    assert "Rolled ledger back to revision 2: now revision 4, version 1.1.0." in html


def test_rolling_back_with_htmx_updates_the_history_and_the_list(app, acme_htmx, room):
    acme_htmx.post(f"{ROOT}/{room['ledger']}/configure", data=_configure_form(2, currency="USD"))
    html = _html(acme_htmx.post(f"{ROOT}/{room['ledger']}/rollback", data={"revision": "2"}))
    assert "<html" not in html and 'data-testid="history-panel"' in html
    assert 'id="revision-4"' in html
    assert '<div id="installations" hx-swap-oob="innerHTML">' in html


def test_each_rollback_form_carries_the_revision_the_history_was_shown_at(acme_client, room):
    acme_client.post(f"{ROOT}/{room['ledger']}/configure", data=_configure_form(2, currency="USD"))
    html = _html(acme_client.get(f"{ROOT}/{room['ledger']}/history"))
    for number in (1, 2):
        form = _revision(html, number)
        assert f'name="revision" value="{number}"' in form
        assert 'name="expected_revision" value="3"' in form


@pytest.mark.parametrize("partial", [False, True])
def test_a_rollback_from_a_stale_history_is_a_409_and_nothing_changes(
    app, acme_client, acme_htmx, room, partial
):
    """The history was shown at revision 2; someone saved revision 3 meanwhile. The rollback
    answers as a stale configure form does: 409, why, nothing changed, a link to reload."""
    client = acme_htmx if partial else acme_client
    one = f"{ROOT}/{room['ledger']}"
    acme_client.post(f"{one}/configure", data=_configure_form(2, currency="USD"))
    before = installation_state(app)
    resp = client.post(f"{one}/rollback", data={"revision": "2", "expected_revision": "2"})
    html = _html(resp)
    assert resp.status_code == 409
    assert ("<html" in html) is not partial
    assert 'data-testid="history-panel"' in html and 'data-testid="panel-error"' not in html
    conflict = re.search(r'<div[^>]*data-testid="conflict".*?</div>', html, re.S).group(0)
    assert "revision 3, not 2" in conflict and "Nothing was changed." in conflict
    assert "Load revision 3" in conflict and f'href="{one}/history"' in conflict
    assert installation_state(app) == before
    assert _config(app, room["ledger"])[:2] == (3, "1.1.0")
    # The panel shows the history as it is now: its forms are based on revision 3.
    assert 'id="revision-3"' in html and 'name="expected_revision" value="3"' in html
    assert SECRET not in html
    resp = client.post(f"{one}/rollback", data={"revision": "2", "expected_revision": "3"})
    assert resp.status_code == (200 if partial else 303)
    revision, _version, config = _config(app, room["ledger"])
    assert (revision, config["currency"]) == (4, "EUR")


def test_a_rollback_that_would_break_a_dependent_is_a_409_naming_it(app, acme_client, room):
    before = installation_state(app)
    resp = acme_client.post(f"{ROOT}/{room['ledger']}/rollback", data={"revision": "1"})
    html = _html(resp)
    assert resp.status_code == 409 and 'data-testid="panel-error"' in html and "billing" in html
    assert installation_state(app) == before


def test_a_rollback_to_a_configuration_that_no_longer_validates_is_a_422(app, acme_client, room):
    acme_client.post(f"{ROOT}/{room['ledger']}/configure", data=_configure_form(2, limit="20"))
    with app.app_context():  # as if revision 2 had been stored under looser rules
        db.session.execute(
            sa.update(InstallationRevision)
            .where(
                InstallationRevision.installation_id == room["ledger"],
                InstallationRevision.revision == 2,
            )
            .values(config={"currency": "XXX", "api_key": SECRET})
        )
        db.session.commit()
        db.session.remove()
    before = installation_state(app)
    resp = acme_client.post(f"{ROOT}/{room['ledger']}/rollback", data={"revision": "2"})
    html = _html(resp)
    assert resp.status_code == 422 and 'data-testid="panel-error"' in html
    assert "/currency" in html and SECRET not in html
    assert installation_state(app) == before


# --- Uninstall -------------------------------------------------------------------------------


def test_the_uninstall_confirmation_names_the_dependents_and_offers_the_cascade(acme_client, room):
    html = _html(acme_client.get(f"{ROOT}/{room['ledger']}/uninstall"))
    assert 'data-dependent="billing"' in html
    assert 'name="cascade" value="true"' in html and "Uninstall ledger and billing" in html
    assert 'hx-confirm="Uninstall billing, ledger?' in html
    html = _html(acme_client.get(f"{ROOT}/{room['billing']}/uninstall"))
    assert "No installed module depends on billing" in html and 'name="cascade"' not in html


def test_uninstalling_a_module_with_dependents_without_the_cascade_is_a_409_naming_them(
    app, acme_client, room
):
    before = installation_state(app)
    resp = acme_client.post(f"{ROOT}/{room['ledger']}/uninstall", data={})
    html = _html(resp)
    assert resp.status_code == 409 and 'data-dependent="billing"' in html
    assert "billing depend on ledger" in html
    assert installation_state(app) == before


def test_the_cascade_uninstalls_them_all_and_they_move_to_previously_installed(
    app, acme_client, room
):
    resp = acme_client.post(f"{ROOT}/{room['ledger']}/uninstall", data={"cascade": "true"})
    assert resp.status_code == 303 and resp.headers["Location"] == ROOT
    assert {_inst(app, room[n]).status for n in ("ledger", "billing")} == {"uninstalled"}
    assert _inst(app, room["globex"]).status == "installed"
    html = _html(acme_client.get(ROOT))
    assert re.search(r'data-testid="installation-count"[^>]*>0 installed modules', html)
    previous = re.search(r'data-testid="previously-installed".*?</section>', html, re.S).group(0)
    assert (
        'href="/modules/ledger/install"' in previous
        and 'href="/modules/billing/install"' in previous
    )
    assert "Uninstalled billing 1.0.0, ledger 1.1.0." in html


def test_uninstalling_with_htmx_removes_the_rows_in_place(app, acme_htmx, room):
    html = _html(acme_htmx.post(f"{ROOT}/{room['ledger']}/uninstall", data={"cascade": "true"}))
    assert "<html" not in html
    listed = html.split('<div id="installations" hx-swap-oob="innerHTML">', 1)[1]
    assert f'id="installation-{room["ledger"]}"' not in listed
    assert f'id="installation-{room["billing"]}"' not in listed
    assert f'id="previous-{room["ledger"]}"' in listed and 'id="previous-' in listed


def test_an_uninstalled_module_has_no_configure_or_uninstall_panel(app, acme_client, room):
    acme_client.post(f"{ROOT}/{room['billing']}/uninstall", data={})
    for action in ("configure", "version", "uninstall"):
        assert acme_client.get(f"{ROOT}/{room['billing']}/{action}").status_code == 409
    html = _html(acme_client.get(f"{ROOT}/{room['billing']}/history"))
    assert "is uninstalled" in html and "Roll back to this revision" not in html


# --- Paging ----------------------------------------------------------------------------------


def _uninstalled_before(app, n: int) -> None:
    """n modules bulk-00000, bulk-00001, ... that acme installed once and uninstalled
    (releases and records inserted in bulk)."""
    bulk_modules(app, 0, n)
    with app.app_context():
        acme = db.session.execute(sa.select(Company.id).where(Company.slug == "acme")).scalar()
        releases = db.session.execute(
            sa.select(ModuleRelease.id, ModuleRelease.name).where(ModuleRelease.name.like("bulk-%"))
        ).all()
        rows = [
            {
                "company_id": acme,
                "module_name": name,
                "module_id": module_id,
                "status": "uninstalled",
                "config": {},
                "uninstalled_at": utcnow(),
            }
            for module_id, name in releases
        ]
        db.session.execute(sa.insert(Installation), rows)
        db.session.commit()
        db.session.remove()


def _previous_names(html: str) -> list[str]:
    return re.findall(r'<tr id="previous-\d+" data-module="([^"]+)"', html)


def _pager_links(html: str, label: str = "Pages of previously installed modules") -> dict:
    """rel → href of one pager's links (each also its hx-get, swapping the list)."""
    match = re.search(rf'<nav class="pager" aria-label="{label}">.*?</nav>', html, re.S)
    if match is None:
        return {}
    links = {}
    for href, hx_get, target, rel in re.findall(
        r'<a href="([^"]*)" hx-get="([^"]*)" hx-target="([^"]*)"[^>]*rel="(\w+)"', match.group(0)
    ):
        assert hx_get == href and target == "#installations"
        links[rel] = href.replace("&amp;", "&")
    return links


def test_previously_installed_modules_are_paged_twenty_at_a_time(app, acme_client, acme_htmx):
    _uninstalled_before(app, 23)

    first = _html(acme_client.get(ROOT))
    resp = acme_htmx.get(_pager_links(first)["next"])

    second = _html(resp)
    assert _previous_names(first) == [f"bulk-{i:05d}" for i in range(20)]
    assert _pager_links(first) == {"next": f"{ROOT}?previous_page=2"}
    assert resp.status_code == 200 and "<html" not in second
    assert _previous_names(second) == ["bulk-00020", "bulk-00021", "bulk-00022"]
    assert _pager_links(second) == {"prev": ROOT}
    # The installed modules stay as they were, on their own pager.
    assert 'data-module="ledger"' in second and 'data-module="billing"' in second


def test_each_pager_of_the_control_room_keeps_the_others_page(app, acme_client):
    _uninstalled_before(app, 21)

    html = _html(acme_client.get(f"{ROOT}?per_page=1&previous_page=2"))

    assert _previous_names(html) == ["bulk-00020"]
    assert _pager_links(html) == {"prev": f"{ROOT}?per_page=1"}
    installed = _pager_links(html, "Pages")
    assert installed == {"next": f"{ROOT}?page=2&previous_page=2&per_page=1"}


@pytest.mark.parametrize("name", ["page", "previous_page", "per_page"])
@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "²", "9" * 40, "9" * 5000])
def test_bad_paging_values_on_the_control_room_never_fail(app, acme_client, acme_htmx, name, value):
    _uninstalled_before(app, 21)
    for client in (acme_client, acme_htmx):
        resp = client.get(ROOT, query_string={name: value})
        html = _html(resp)
        assert resp.status_code == 200
        # A page past the end is the last page, never an empty one.
        assert 'data-module="ledger"' in html and _previous_names(html)


# --- Reinstalling ----------------------------------------------------------------------------


def test_reinstalling_starts_from_the_last_configuration_and_keeps_the_secret(
    app, acme_client, room
):
    acme_client.post(f"{ROOT}/{room['billing']}/uninstall", data={})
    acme_client.post(f"{ROOT}/{room['ledger']}/configure", data=_configure_form(2, currency="GBP"))
    acme_client.post(f"{ROOT}/{room['ledger']}/uninstall", data={})
    html = _html(acme_client.get("/modules/ledger/install?version=1.1.0"))
    assert 'data-testid="previous-config"' in html
    assert '<option value="GBP" selected>' in html and 'value="10"' in html
    assert 'data-testid="secret-set"' in html and SECRET not in html
    resp = acme_client.post(
        "/modules/ledger/install",
        data={"version": "1.1.0", "config/currency": "GBP", "config/limit": "10"},
    )
    assert resp.status_code == 303
    revision, version, config = _config(app, room["ledger"])  # the same record, continued
    assert (revision, version) == (4, "1.1.0")
    assert config == {"currency": "GBP", "limit": 10, "api_key": SECRET}


# --- Secrets ---------------------------------------------------------------------------------


def test_a_secret_never_appears_in_pages_forms_history_or_diffs(app, acme_client, acme_htmx, room):
    one = f"{ROOT}/{room['ledger']}"
    acme_client.post(f"{one}/configure", data=_configure_form(2, api_key=NEW_SECRET))
    bodies = []
    for client in (acme_client, acme_htmx):
        for path in (
            ROOT,
            f"{ROOT}/health",
            f"{one}/configure",
            f"{one}/version",
            f"{one}/version?version=1.2.0",
            f"{one}/history",
            f"{one}/uninstall",
        ):
            bodies.append(_html(client.get(path)))
        bodies.append(_html(client.post(f"{one}/configure", data=_configure_form(1))))
        bodies.append(_html(client.post(f"{one}/configure", data=_configure_form(3, limit="-4"))))
        bodies.append(_html(client.post(f"{one}/configure/validate", data=_configure_form(3))))
        bodies.append(_html(client.post(f"{one}/rollback", data={"revision": "1"})))
    for body in bodies:
        assert SECRET not in body and NEW_SECRET not in body


# --- Health badges ---------------------------------------------------------------------------


def test_the_health_fragment_sends_every_badge_out_of_band(app, acme_htmx, room):
    with app.app_context():
        inst = db.session.get(Installation, room["ledger"])
        with unit_of_work():
            record_health(inst, "unhealthy", "answered 500 Internal Server Error", 3, "check")
        db.session.remove()
    html = _html(acme_htmx.get(f"{ROOT}/health"))
    ledger = re.search(
        rf'<span id="health-{room["ledger"]}" hx-swap-oob="innerHTML">.*?</span>\n', html, re.S
    )
    assert ledger and 'data-status="unhealthy"' in ledger.group(0)
    assert "answered 500 Internal Server Error" in ledger.group(0) and "checked " in ledger.group(0)
    assert f'id="health-{room["billing"]}"' in html and "not checked yet" in html
    assert f'id="health-{room["globex"]}"' not in html


def _statements(app, client, path: str) -> list[str]:
    """The statements one GET of `path` runs (tests.helpers.captured_statements)."""
    with captured_statements(app) as statements:
        assert client.get(path).status_code == 200
    seen = [statement for statement, _params in statements]
    return seen


def test_the_health_fragment_takes_one_query_whatever_the_number_of_modules(app, acme_htmx, room):
    acme_htmx.get(f"{ROOT}/health")
    few = _statements(app, acme_htmx, f"{ROOT}/health")
    with app.app_context():
        for i in range(5):
            approved_release(f"extra-{i}", "1.0.0")
            install_module(
                InstallRequest(module=f"extra-{i}"), actor=users.user_by_email(ACME_ADMIN)
            )
        db.session.remove()
    many = _statements(app, acme_htmx, f"{ROOT}/health")
    assert len(few) == len(many), (few, many)
    # The signed-in user (with the company), then the badges (SQLite adds its BEGIN).
    reads = [s for s in many if "FROM installations" in s]
    assert len(reads) == 1 and len([s for s in many if s.startswith("SELECT")]) == 2, many


def test_the_polling_interval_comes_from_the_app_config(app, acme_client, monkeypatch):
    monkeypatch.setitem(app.config, "HEALTH_BADGE_POLL_SECONDS", 1)
    assert 'hx-trigger="every 1s"' in _html(acme_client.get(ROOT))
