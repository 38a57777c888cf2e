"""The activity page (/activity): the event log scoped as the events API is (platform admins
all, company admins their own company's, developers 403), filters through htmx, paging, and
entries that link to what they concern."""

from __future__ import annotations

import re

import pytest

from portal import events
from portal.extensions import db
from portal.services.accounts import users
from portal.services.review import decisions
from portal.services.uow import unit_of_work
from tests.helpers import (
    ACME_ADMIN,
    ACME_DEV,
    ADMIN,
    GLOBEX_ADMIN,
    GLOBEX_DEV,
    login,
    publish_manifest,
)
from tests.packaging import manifest


def rows(html: str) -> list[dict]:
    """Each event row's type, company and module, newest first."""
    return [
        {"id": int(i), "type": t, "company": c, "module": m}
        for i, t, c, m in re.findall(
            r'<tr id="event-(\d+)" data-type="([^"]*)" data-company="([^"]*)" '
            r'data-module="([^"]*)">',
            html,
        )
    ]


def record(type_: str, company: str, installation_id: int | None = None) -> None:
    with unit_of_work():
        events.record_event(type_, actor="system", company=company, installation_id=installation_id)


@pytest.fixture
def log(app, people):
    """acme: purchasing registered + approved, an installation event; globex: payroll
    registered + rejected with a reason."""
    with app.app_context():
        admin = users.user_by_email(ADMIN)
        purchasing = publish_manifest(manifest("purchasing", "1.2.0"), actor_email=ACME_DEV)
        decisions.change_status(purchasing.id, "approved", actor=admin)
        payroll = publish_manifest(manifest("payroll"), actor_email=GLOBEX_DEV)
        decisions.change_status(payroll.id, "rejected", "Needs a config_schema.", actor=admin)
        record(events.INSTALLATION_CREATED, "acme", installation_id=7)
        db.session.remove()
    return people


def test_developers_may_not_read_the_activity_log(client, log):
    login(client, ACME_DEV)
    assert client.get("/activity").status_code == 403
    assert client.application.test_client().get("/activity").status_code == 302


def test_platform_admins_see_every_event_newest_first(client, log):
    login(client, ADMIN)
    found = rows(client.get("/activity").get_data(as_text=True))
    assert [r["type"] for r in found] == [
        "installation.created",
        "module.rejected",
        "module.registered",
        "module.approved",
        "module.registered",
    ]
    assert [r["id"] for r in found] == sorted((r["id"] for r in found), reverse=True)
    assert {r["company"] for r in found} == {"acme", "globex"}


@pytest.mark.parametrize(
    ("email", "own", "other"), [(ACME_ADMIN, "acme", "globex"), (GLOBEX_ADMIN, "globex", "acme")]
)
def test_a_company_admin_sees_only_the_companys_events(client, log, email, own, other):
    login(client, email)
    html = client.get("/activity").get_data(as_text=True)
    found = rows(html)
    assert found and {r["company"] for r in found} == {own}
    # Asking for the other company's events changes nothing: the scope is the company.
    assert rows(client.get(f"/activity?company={other}").get_data(as_text=True)) == found
    assert 'name="company"' not in html
    other_module = "payroll" if other == "globex" else "purchasing"
    assert rows(client.get(f"/activity?module={other_module}").get_data(as_text=True)) == []
    assert f'<option value="{other_module}"' not in html


def test_filters_by_type_module_and_company(client, log):
    login(client, ADMIN)

    def types(query):
        return [r["type"] for r in rows(client.get(f"/activity?{query}").get_data(as_text=True))]

    assert types("type=module.approved") == ["module.approved"]
    assert types("module=payroll") == ["module.rejected", "module.registered"]
    assert types("company=acme") == [
        "installation.created",
        "module.approved",
        "module.registered",
    ]
    assert types("company=acme&type=module.registered&module=purchasing") == ["module.registered"]
    assert types("type=not-a-type") == types("")  # an unknown type is ignored, not a 500
    assert types("module=%00&company=%00&page=x&per_page=-1") == types("")
    assert types("page=%C2%B2&per_page=%D9%A3") == types("")
    assert client.get("/activity?page=" + "9" * 40).status_code == 200
    html = client.get("/activity?type=module.approved").get_data(as_text=True)
    assert '<option value="module.approved" selected>' in html
    for name in ("type", "module", "company"):
        select = re.search(rf'<select id="{name}"[^>]*>', html).group(0)
        assert 'hx-get="/activity"' in select and 'hx-target="#events"' in select
        assert 'hx-push-url="true"' in select and 'hx-include="closest form"' in select


def test_an_htmx_request_gets_only_the_list(htmx_client, log):
    login(htmx_client, ADMIN)
    resp = htmx_client.get("/activity?module=payroll")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in html
    assert 'id="activity-filters"' not in html
    assert "HX-Request" in resp.headers["Vary"]
    assert [r["module"] for r in rows(html)] == ["payroll", "payroll"]
    restore = htmx_client.get(
        "/activity?module=payroll", headers={"HX-History-Restore-Request": "true"}
    )
    assert "<html" in restore.get_data(as_text=True)


def test_entries_link_to_what_they_concern(client, log):
    login(client, ACME_ADMIN)
    html = client.get("/activity").get_data(as_text=True)
    assert '<a href="/modules/purchasing?version=1.2.0" data-testid="concerns">' in html
    assert '<span data-testid="installation">installation #7</span>' in html
    login(client, ADMIN)
    html = client.get("/activity?module=payroll").get_data(as_text=True)
    assert "Needs a config_schema." in html and "pending → rejected" in html


def test_paging_keeps_the_filters(app, client, people):
    with app.app_context():
        for i in range(30):
            record(events.INSTALLATION_UPDATED, "acme", installation_id=i)
        record(events.INSTALLATION_CREATED, "acme", installation_id=99)
        db.session.remove()
    login(client, ACME_ADMIN)
    html = client.get("/activity?type=installation.updated").get_data(as_text=True)
    assert len(rows(html)) == 25 and "Page 1 of 2" in html
    (link,) = re.findall(r'href="(/activity\?[^"]*page=2[^"]*)" hx-get', html)
    link = link.replace("&amp;", "&")
    assert "type=installation.updated" in link
    page2 = rows(client.get(link).get_data(as_text=True))
    assert len(page2) == 5 and {r["type"] for r in page2} == {"installation.updated"}


def test_the_navigation_shows_activity_to_admins_only(client, log):
    for email, shown in ((ADMIN, True), (ACME_ADMIN, True), (ACME_DEV, False)):
        fresh = client.application.test_client()
        login(fresh, email)
        html = fresh.get("/").get_data(as_text=True)
        assert ('data-nav="activity"' in html) is shown, email
