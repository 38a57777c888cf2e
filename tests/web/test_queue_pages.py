"""The approval queue at /admin/queue: who may use it, the list and its publisher filter,
the check report (dependencies, package scan, manifest diff), decisions with htmx (the
item leaves, counts follow out of band, errors retarget) and without JavaScript (303),
and a statement count that does not grow with the queue."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Event, ModuleRelease
from portal.models.base import utcnow
from portal.services.accounts import users
from portal.services.review import decisions
from portal.services.review import report as reports
from portal.web.review import file_size, time_ago
from tests.helpers import ACME_DEV as DEVELOPER
from tests.helpers import (
    ADMIN,
    GLOBEX_DEV,
    captured_statements,
    login,
    publish_manifest,
    publish_package,
    set_release_status,
)
from tests.packaging import manifest, manifest_yaml, zip_package

OOB_COUNT = re.compile(r'<span class="count" id="nav-count-queue" hx-swap-oob="true">(\d+)</span>')


def _publish(
    app,
    name="purchasing",
    version="1.0.0",
    *,
    by=DEVELOPER,
    hours_ago=None,
    visibility=None,
    publisher=None,
    **extra,
):
    """A pending manifest-only release (id), optionally backdated; `extra` goes into the
    manifest."""
    with app.app_context():
        module_id = publish_manifest(
            manifest(name, version, **extra),
            actor_email=by,
            visibility=visibility,
            publisher=publisher,
        ).id
        if hours_ago is not None:
            db.session.execute(
                sa.update(ModuleRelease)
                .where(ModuleRelease.id == module_id)
                .values(created_at=utcnow() - timedelta(hours=hours_ago))
            )
            db.session.commit()
        db.session.remove()
    return module_id


def _approve(app, module_id: int) -> None:
    with app.app_context():
        decisions.change_status(module_id, "approved", actor=users.user_by_email(ADMIN))
        db.session.remove()


def _status(app, module_id: int) -> tuple[str, str | None]:
    with app.app_context():
        release = db.session.get(ModuleRelease, module_id)
        result = (release.status, release.status_reason)
        db.session.remove()
    return result


class _TopLevel(HTMLParser):
    """Collects the attributes of a fragment's top-level elements; text there fails."""

    VOID = {"br", "hr", "img", "input", "meta", "link", "source", "wbr"}

    def __init__(self):
        super().__init__()
        self.depth, self.elements = 0, []

    def handle_starttag(self, tag, attrs):
        if self.depth == 0:
            self.elements.append(dict(attrs))
        if tag not in self.VOID:
            self.depth += 1

    def handle_endtag(self, tag):
        self.depth -= 1

    def handle_data(self, data):
        assert self.depth > 0 or not data.strip(), f"text outside any element: {data!r}"


def _top_level_elements(html: str) -> list[dict]:
    parser = _TopLevel()
    parser.feed(html)
    return parser.elements


def _queue_order(html: str) -> list[str]:
    return re.findall(r'data-name="([^"]+)" data-version="([^"]+)"', html)


@pytest.fixture
def admin_client(client, people):
    login(client, ADMIN)
    return client


@pytest.fixture
def admin_htmx(htmx_client, people):
    login(htmx_client, ADMIN)
    return htmx_client


# --- Access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("email", [DEVELOPER, "admin@acme.test", "admin@globex.test"])
def test_only_platform_admins_open_the_queue_or_decide(app, client, people, email):
    module_id = _publish(app)
    login(client, email)

    assert client.get("/admin/queue").status_code == 403
    assert client.get(f"/admin/queue/{module_id}").status_code == 403
    assert client.post(f"/admin/queue/{module_id}/approve").status_code == 403
    assert client.post(f"/admin/queue/{module_id}/reject", data={"reason": "x"}).status_code == 403
    assert _status(app, module_id) == ("pending", None)


def test_signed_out_visitors_are_sent_to_sign_in(client):
    resp = client.get("/admin/queue")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_a_developers_htmx_decision_is_a_403_flash(app, htmx_client, people):
    module_id = _publish(app)
    login(htmx_client, DEVELOPER)

    resp = htmx_client.post(f"/admin/queue/{module_id}/approve")

    assert resp.status_code == 403
    assert resp.headers["HX-Retarget"] == "#flash"
    assert "<html" not in resp.get_data(as_text=True)


def test_the_navigation_shows_the_queue_with_its_count_to_admins_only(app, client, people):
    _publish(app)
    _publish(app, "billing")
    login(client, ADMIN)
    page = client.get("/").get_data(as_text=True)
    assert re.search(
        r'href="/admin/queue".*?<span class="count" id="nav-count-queue">2</span>', page, re.S
    )
    other = app.test_client()
    login(other, DEVELOPER)
    assert "/admin/queue" not in other.get("/").get_data(as_text=True)


# --- The list ---------------------------------------------------------------------------------


def test_the_queue_lists_pending_releases_of_every_company_oldest_first(app, admin_client):
    _publish(app, "newest", hours_ago=0)
    _publish(app, "oldest", hours_ago=50)
    _publish(app, "secret", by=GLOBEX_DEV, hours_ago=3, visibility="private")
    decided = _publish(app, "decided", hours_ago=70)
    _approve(app, decided)

    html = admin_client.get("/admin/queue").get_data(as_text=True)

    assert _queue_order(html) == [("oldest", "1.0.0"), ("secret", "1.0.0"), ("newest", "1.0.0")]
    assert "2 days ago" in html and "3 hours ago" in html and "just now" in html
    assert "Globex" in html and "Acme" in html
    assert "3 releases waiting for review" in html


def test_an_empty_queue_says_so(admin_client):
    html = admin_client.get("/admin/queue").get_data(as_text=True)
    assert "0 releases waiting for review" in html
    assert re.search(r'<p id="queue-empty" class="card muted">Nothing waits', html)


def test_the_filter_by_publisher_answers_htmx_with_the_list_only(app, admin_htmx):
    _publish(app, "purchasing")
    _publish(app, "ledger", by=GLOBEX_DEV)

    resp = admin_htmx.get("/admin/queue?publisher=globex")

    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in html
    assert "HX-Request" in resp.headers["Vary"]
    assert _queue_order(html) == [("ledger", "1.0.0")]
    assert 'id="queue-filter"' not in html  # the list region only
    assert "from <strong>globex</strong>" in html


def test_the_filter_works_without_javascript_as_a_get_form(app, admin_client):
    _publish(app, "purchasing")
    _publish(app, "ledger", by=GLOBEX_DEV)

    page = admin_client.get("/admin/queue").get_data(as_text=True)
    form = page.split('id="queue-filter"', 1)[1].split("</form>", 1)[0]
    assert 'method="get"' in form and 'action="/admin/queue"' in form
    assert 'hx-get="/admin/queue"' in form and 'hx-push-url="true"' in form
    assert '<label for="publisher">Publisher</label>' in form
    assert '<option value="acme">' in form and '<option value="globex">' in form

    filtered = admin_client.get("/admin/queue?publisher=acme").get_data(as_text=True)
    assert "<html" in filtered and _queue_order(filtered) == [("purchasing", "1.0.0")]
    assert '<option value="acme" selected>' in filtered


# --- The report -------------------------------------------------------------------------------


def test_a_release_opens_in_place_as_a_fragment_and_without_js_as_a_page(app, admin_client):
    module_id = _publish(app)
    fragment_client = app.test_client()
    login(fragment_client, ADMIN)

    partial = fragment_client.get(f"/admin/queue/{module_id}", headers={"HX-Request": "true"})
    page = admin_client.get(f"/admin/queue/{module_id}")

    html = partial.get_data(as_text=True)
    assert partial.status_code == 200 and "<html" not in html
    assert "HX-Request" in partial.headers["Vary"]
    assert 'data-testid="report"' in html and "autofocus" in html
    assert f'hx-post="/admin/queue/{module_id}/approve"' in html
    assert f'hx-target="#queue-item-{module_id}"' in html
    full = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in full
    assert f'action="/admin/queue/{module_id}/approve"' in full
    assert f'action="/admin/queue/{module_id}/reject"' in full
    assert '<label for="reason-' in full and "required" in full
    # The list's Review link is a real link to the same URL, loading into the item.
    listing = admin_client.get("/admin/queue").get_data(as_text=True)
    assert f'href="/admin/queue/{module_id}" hx-get="/admin/queue/{module_id}"' in listing
    assert f'hx-target="#queue-detail-{module_id}"' in listing


def test_the_report_resolves_each_dependency_against_approved_releases(app, admin_client):
    for version in ("1.2.0", "1.5.0", "2.0.0"):
        _approve(app, _publish(app, "base-lib", version))
    waiting = _publish(app, "base-lib", "1.9.0")  # pending: never the answer
    gone = _publish(app, "base-lib", "1.8.0")
    _approve(app, gone)
    set_release_status(app, gone, "deleted")
    _approve(app, _publish(app, "hidden-lib", by=GLOBEX_DEV, visibility="private"))
    module_id = _publish(
        app,
        "purchasing",
        dependencies=[
            {"name": "base-lib", "version": "^1.0"},
            {"name": "base-lib-two", "version": ">=1.0.0"},
            {"name": "hidden-lib", "version": "*"},
            {"name": "auth-service", "type": "service", "version": ">=2"},
        ],
    )

    with app.app_context():
        report = reports.release_report(module_id, actor=users.user_by_email(ADMIN))
        deps = {d.name: d for d in report.dependencies}
        assert deps["base-lib"].match.version == "1.5.0"  # highest satisfying, not 2.0.0
        assert deps["base-lib"].approved_versions == ["2.0.0", "1.5.0", "1.2.0"]
        assert deps["base-lib"].problem is None
        assert (
            deps["base-lib-two"].match is None
            and "no approved release" in deps["base-lib-two"].problem
        )
        assert deps["hidden-lib"].match is None  # another company's private release
        assert deps["auth-service"].type == "service" and deps["auth-service"].ok
        assert len(report.warnings) == 2
        db.session.remove()

    html = admin_client.get(f"/admin/queue/{module_id}").get_data(as_text=True)
    base_row = html.split('data-dependency="base-lib"', 1)[1].split("</tr>", 1)[0]
    assert "satisfied by" in base_row and "base-lib 1.5.0" in base_row
    missing_row = html.split('data-dependency="base-lib-two"', 1)[1].split("</tr>", 1)[0]
    assert "⚠" in missing_row and "no approved release of base-lib-two" in missing_row
    service_row = html.split('data-dependency="auth-service"', 1)[1].split("</tr>", 1)[0]
    assert "platform service" in service_row and "&gt;=2" in service_row
    assert waiting  # listed in the queue itself, not as an answer


def test_a_dependency_only_a_pending_release_satisfies_says_it_waits_for_review(app, admin_client):
    _approve(app, _publish(app, "base-lib", "1.0.0"))
    _publish(app, "base-lib", "2.1.0")
    module_id = _publish(app, dependencies=[{"name": "base-lib", "version": "^2.0"}])

    html = admin_client.get(f"/admin/queue/{module_id}").get_data(as_text=True)

    row = html.split('data-dependency="base-lib"', 1)[1].split("</tr>", 1)[0]
    assert "no approved release of base-lib satisfies ^2.0" in row
    assert "Approved: 1.0.0" in row and "Waiting for review: 2.1.0" in row


def test_the_report_diffs_the_manifest_against_the_previous_approved_release(app, admin_client):
    _approve(app, _publish(app, version="1.0.0", tags=["erp"]))
    _approve(app, _publish(app, version="1.2.0", tags=["erp"], category="finance"))
    _approve(app, _publish(app, version="2.0.0"))  # higher: not "previous"
    rejected = _publish(app, version="1.2.5")
    with app.app_context():
        decisions.change_status(rejected, "rejected", "no", actor=users.user_by_email(ADMIN))
        db.session.remove()
    module_id = _publish(app, version="1.3.0", tags=["erp", "procurement"], category="finance")

    with app.app_context():
        diff = reports.release_report(module_id, actor=users.user_by_email(ADMIN)).diff
        assert diff.previous.version == "1.2.0"
        changed = [(line.kind, line.text) for line in diff.lines if line.kind != "context"]
        assert changed == [
            ("hunk", changed[0][1]),
            ("removed", "version: 1.2.0"),
            ("added", "- procurement"),
            ("added", "version: 1.3.0"),
        ]
        assert (diff.added, diff.removed) == (2, 1)
        assert any(line.kind == "context" and line.text == "- erp" for line in diff.lines)
        db.session.remove()

    html = admin_client.get(f"/admin/queue/{module_id}").get_data(as_text=True)
    section = html.split('data-testid="diff"', 1)[1].split("</section>", 1)[0]
    assert "purchasing 1.2.0" in section and "2 lines added" in section
    assert '<ins class="diff-line diff-added">+version: 1.3.0</ins>' in section
    assert '<del class="diff-line diff-removed">-version: 1.2.0</del>' in section
    assert '<span class="diff-line diff-context"> - erp</span>' in section


def test_a_first_release_has_nothing_to_compare_with(app, admin_client):
    module_id = _publish(app)
    html = admin_client.get(f"/admin/queue/{module_id}").get_data(as_text=True)
    assert 'data-testid="first-release"' in html and "First release of purchasing" in html


def test_the_report_shows_the_package_scan_with_files_sizes_warnings_and_digest(app, admin_client):
    files = {"src/main.py": b"print(1)\n" * 200, "bin/setup.sh": b"#!/bin/sh\n"}
    with app.app_context():
        release = publish_package(
            zip_package(manifest_yaml("purchasing", "1.0.0"), files=files), actor_email=DEVELOPER
        )
        module_id, digest = release.id, release.package_sha256
        db.session.remove()

    html = admin_client.get(f"/admin/queue/{module_id}").get_data(as_text=True)

    package = html.split('data-testid="package"', 1)[1].split("</section>", 1)[0]
    assert "purchasing-1.0.0.zip" in package and "zip" in package
    assert digest in package and len(digest) == 64
    assert "<code>src/main.py</code>" in package and "1.8 KiB" in package
    assert "<code>bin/setup.sh</code>" in package and "10 bytes" in package
    assert "bin/setup.sh: executable" in package
    assert "3 files" in package
    manifest_part = html.split('data-testid="manifest"', 1)[1].split("</section>", 1)[0]
    assert "Passed validation" in manifest_part and "Acme Developers" in manifest_part


def test_a_manifest_only_release_says_so(app, admin_client):
    module_id = _publish(app)
    html = admin_client.get(f"/admin/queue/{module_id}").get_data(as_text=True)
    assert "Manifest-only release" in html
    assert "manifest only" in admin_client.get("/admin/queue").get_data(as_text=True)


def test_an_admins_own_upload_offers_no_decision(app, admin_client):
    module_id = _publish(app, by=ADMIN, publisher="acme")
    html = admin_client.get(f"/admin/queue/{module_id}").get_data(as_text=True)
    assert "You uploaded this release yourself" in html
    assert f'action="/admin/queue/{module_id}/approve"' not in html
    assert "your upload" in admin_client.get("/admin/queue").get_data(as_text=True)


# --- Deciding with htmx -----------------------------------------------------------------------


def test_approving_with_htmx_removes_the_item_and_updates_counts_out_of_band(app, admin_htmx):
    first = _publish(app, "alpha", hours_ago=3)
    second = _publish(app, "beta", hours_ago=2)
    _publish(app, "gamma", hours_ago=1)

    resp = admin_htmx.post(f"/admin/queue/{first}/approve")

    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in html
    assert "HX-Request" in resp.headers["Vary"]
    assert OOB_COUNT.search(html).group(1) == "2"
    # Nothing but out-of-band elements: the item swapped with it disappears.
    assert all("hx-swap-oob" in attrs for attrs in _top_level_elements(html))
    assert '<div id="flash" class="flash-area" hx-swap-oob="innerHTML">' in html
    assert "Approved alpha 1.0.0." in html
    assert re.search(r'id="queue-status"[^>]*hx-swap-oob="true"[^>]*>\s*2 releases', html)
    # The keyboard focus moves to the next release's Review link.
    summary = html.split(f'id="queue-summary-{second}" hx-swap-oob="true"', 1)[1]
    assert f'id="review-link-{second}"' in summary and "autofocus" in summary.split("</a>")[0]
    assert _status(app, first) == ("approved", None)


def test_rejecting_with_htmx_records_the_reason_and_the_last_one_empties_the_queue(app, admin_htmx):
    module_id = _publish(app)

    resp = admin_htmx.post(f"/admin/queue/{module_id}/reject", data={"reason": "Add a README"})

    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert OOB_COUNT.search(html).group(1) == "0"
    assert "Rejected purchasing 1.0.0: Add a README" in html
    assert re.search(r'<p id="queue-empty" class="card muted" hx-swap-oob="true">', html)
    assert re.search(r'id="queue-status"[^>]*autofocus', html)
    assert _status(app, module_id) == ("rejected", "Add a README")


@pytest.mark.parametrize("reason", ["", "   \n "])
def test_a_blank_reason_shows_next_to_the_field_and_changes_nothing(app, admin_htmx, reason):
    module_id = _publish(app)

    resp = admin_htmx.post(f"/admin/queue/{module_id}/reject", data={"reason": reason})

    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "<html" not in html
    assert resp.headers["HX-Retarget"] == f"#reject-form-{module_id}"
    assert resp.headers["HX-Reswap"] == "outerHTML"
    assert f'id="reason-{module_id}-error"' in html and 'aria-invalid="true"' in html
    assert "autofocus" in html
    assert _status(app, module_id) == ("pending", None)


def test_a_decision_someone_made_first_is_a_409_flash_and_nothing_changes(app, admin_htmx):
    module_id = _publish(app)
    _publish(app, "billing")
    _approve(app, module_id)

    resp = admin_htmx.post(f"/admin/queue/{module_id}/reject", data={"reason": "Too late"})

    assert resp.status_code == 409
    assert resp.headers["HX-Retarget"] == "#flash"
    html = resp.get_data(as_text=True)
    assert 'class="flash flash-error"' in html and "nav-count-queue" not in html
    assert _status(app, module_id) == ("approved", None)


def test_deciding_on_ones_own_upload_is_a_403_flash(app, admin_htmx):
    module_id = _publish(app, by=ADMIN, publisher="acme")

    resp = admin_htmx.post(f"/admin/queue/{module_id}/approve")

    assert resp.status_code == 403 and resp.headers["HX-Retarget"] == "#flash"
    assert "uploaded themselves" in resp.get_data(as_text=True)
    assert _status(app, module_id) == ("pending", None)


def test_the_decision_keeps_the_publisher_filter_for_the_next_focus(app, admin_htmx):
    first = _publish(app, "alpha", hours_ago=3)
    _publish(app, "beta", by=GLOBEX_DEV, hours_ago=2)
    third = _publish(app, "gamma", hours_ago=1)

    resp = admin_htmx.post(f"/admin/queue/{first}/approve", data={"publisher": "acme"})

    html = resp.get_data(as_text=True)
    assert f'id="queue-summary-{third}" hx-swap-oob="true"' in html
    assert re.search(r"1 release waiting for review from <strong>acme</strong>", html)
    assert OOB_COUNT.search(html).group(1) == "2"  # the badge counts every publisher


# --- Deciding without JavaScript --------------------------------------------------------------


def test_without_js_approving_redirects_back_to_the_queue_with_a_flash(app, admin_client):
    module_id = _publish(app)

    resp = admin_client.post(f"/admin/queue/{module_id}/approve", data={"publisher": "acme"})

    assert resp.status_code == 303
    assert resp.headers["Location"] == "/admin/queue?publisher=acme"
    page = admin_client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Approved purchasing 1.0.0." in page and _queue_order(page) == []
    assert _status(app, module_id) == ("approved", None)


def test_without_js_rejecting_redirects_and_a_blank_reason_rerenders_the_page(app, admin_client):
    module_id = _publish(app)

    bad = admin_client.post(f"/admin/queue/{module_id}/reject", data={"reason": " "})
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "<html" in html
    assert f'id="reason-{module_id}-error"' in html and 'data-testid="report"' in html

    good = admin_client.post(f"/admin/queue/{module_id}/reject", data={"reason": "Needs tests"})
    assert good.status_code == 303 and good.headers["Location"] == "/admin/queue"
    assert _status(app, module_id) == ("rejected", "Needs tests")
    with app.app_context():
        assert (
            db.session.execute(
                sa.select(Event.data).where(Event.type == "module.rejected")
            ).scalar_one()["reason"]
            == "Needs tests"
        )
        db.session.remove()


# --- Paging -----------------------------------------------------------------------------------


def _long_queue(app, n: int, *, by=DEVELOPER, prefix="queued") -> list[int]:
    """n pending releases prefix-00, prefix-01, ... submitted in that order (ids)."""
    with app.app_context():
        ids = [publish_manifest(manifest(f"{prefix}-{i:02d}"), actor_email=by).id for i in range(n)]
        db.session.remove()
    return ids


def _names(html: str) -> list[str]:
    return [name for name, _version in _queue_order(html)]


def _pager_link(html: str, rel: str) -> str | None:
    """The href of the pager's prev or next link (checked to be its hx-get too)."""
    match = re.search(
        rf'<a href="([^"]*)" hx-get="([^"]*)" hx-target="([^"]*)"[^>]*rel="{rel}"', html
    )
    if match is None:
        return None
    href, hx_get, target = match.groups()
    assert hx_get == href and target == "#queue-list"
    return href.replace("&amp;", "&")


def _appended(html: str) -> str:
    """What a decision's answer appends to the list out of band."""
    return html.split('<ol hx-swap-oob="beforeend:#queue-items">', 1)[1].split("</ol>")[0]


def _oob_pager(html: str) -> str:
    return html.split('<div id="queue-pager" hx-swap-oob="true">', 1)[1].split("</div>")[0]


def test_a_long_queue_is_paged_twenty_at_a_time_oldest_first(app, admin_client):
    _long_queue(app, 26)

    first = admin_client.get("/admin/queue").get_data(as_text=True)
    second = admin_client.get(_pager_link(first, "next")).get_data(as_text=True)

    assert _names(first) == [f"queued-{i:02d}" for i in range(20)]
    assert _names(second) == [f"queued-{i:02d}" for i in range(20, 26)]
    assert "26 releases waiting for review" in first and "26 releases waiting" in second
    assert "Page 1 of 2" in first and "Page 2 of 2" in second
    assert _pager_link(first, "prev") is None and _pager_link(second, "next") is None
    assert _pager_link(first, "next") == "/admin/queue?page=2"
    assert _pager_link(second, "prev") == "/admin/queue"


def test_the_pager_keeps_the_publisher_filter_and_answers_htmx_with_the_list(
    app, admin_client, admin_htmx
):
    _long_queue(app, 3, by=GLOBEX_DEV, prefix="globex")
    _long_queue(app, 22)

    first = admin_client.get("/admin/queue?publisher=acme").get_data(as_text=True)
    assert _pager_link(first, "next") == "/admin/queue?publisher=acme&page=2"
    resp = admin_htmx.get(_pager_link(first, "next"))

    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in html and 'id="queue-filter"' not in html
    assert _names(html) == ["queued-20", "queued-21"]
    assert "22 releases waiting for review from <strong>acme</strong>" in html
    assert _pager_link(html, "prev") == "/admin/queue?publisher=acme"
    # What opens from page 2 comes back to it: the Review links and the report's forms.
    [second_id] = re.findall(r'id="queue-item-(\d+)" data-name="queued-21"', html)
    assert f'href="/admin/queue/{second_id}?publisher=acme&amp;page=2"' in html
    report = admin_htmx.get(f"/admin/queue/{second_id}?publisher=acme&page=2")
    kept = report.get_data(as_text=True)
    assert kept.count('<input type="hidden" name="page" value="2">') == 2  # approve, reject
    assert kept.count('<input type="hidden" name="publisher" value="acme">') == 2
    assert 'href="/admin/queue?publisher=acme&amp;page=2"' in kept  # Close


@pytest.mark.parametrize(
    ("page", "shown"),
    [
        ("", "queued-00"),
        ("0", "queued-00"),
        ("-2", "queued-00"),
        ("1.5", "queued-00"),
        ("two", "queued-00"),
        ("²", "queued-00"),
        ("3", "queued-20"),  # past the end: the last page
        ("9" * 40, "queued-20"),
        ("9" * 5000, "queued-20"),
    ],
)
def test_bad_page_values_show_a_page_never_an_error(app, admin_client, admin_htmx, page, shown):
    _long_queue(app, 21)

    for client in (admin_client, admin_htmx):
        resp = client.get("/admin/queue", query_string={"page": page})
        assert resp.status_code == 200
        assert _names(resp.get_data(as_text=True))[0] == shown


def test_a_decision_on_a_full_page_brings_up_the_next_release_out_of_band(app, admin_htmx):
    ids = _long_queue(app, 23)

    resp = admin_htmx.post(f"/admin/queue/{ids[3]}/approve")

    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert all("hx-swap-oob" in attrs for attrs in _top_level_elements(html))
    assert OOB_COUNT.search(html).group(1) == "22"
    assert re.search(r'id="queue-status"[^>]*hx-swap-oob="true"[^>]*>\s*22 releases', html)
    # queued-20, the next page's first, joins the end of this one...
    assert _names(_appended(html)) == ["queued-20"]
    # ... and the pager, still two pages, follows; the focus goes to queued-04.
    assert "Page 1 of 2" in _oob_pager(html)
    assert f'id="queue-summary-{ids[4]}" hx-swap-oob="true"' in html


def test_a_decision_on_the_last_page_keeps_it_and_brings_nothing_up(app, admin_htmx):
    ids = _long_queue(app, 23)

    resp = admin_htmx.post(f"/admin/queue/{ids[21]}/approve", data={"page": "2"})

    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "HX-Redirect" not in resp.headers
    assert "beforeend:#queue-items" not in html
    assert f'id="queue-summary-{ids[22]}" hx-swap-oob="true"' in html
    assert re.search(r'id="queue-status"[^>]*>\s*22 releases', html)


def test_a_decision_on_a_page_of_twenty_leaves_a_single_page_without_a_pager(app, admin_htmx):
    ids = _long_queue(app, 21)

    html = admin_htmx.post(f"/admin/queue/{ids[0]}/approve").get_data(as_text=True)

    assert _names(_appended(html)) == ["queued-20"]
    assert "pager" not in _oob_pager(html)  # one page left: no links


def test_emptying_the_last_page_goes_back_to_the_page_before(app, admin_htmx):
    ids = _long_queue(app, 21)

    resp = admin_htmx.post(
        f"/admin/queue/{ids[20]}/reject", data={"reason": "No README", "page": "2"}
    )

    assert resp.status_code == 200 and resp.headers["HX-Redirect"] == "/admin/queue"
    # htmx loads it as a page (no HX-Request), the flash shown there.
    page = admin_htmx.get("/admin/queue", headers={"HX-Request": "false"}).get_data(as_text=True)
    assert "Rejected queued-20 1.0.0: No README" in page and len(_names(page)) == 20
    assert _status(app, ids[20]) == ("rejected", "No README")


def test_without_js_a_decision_from_page_two_comes_back_to_page_two(app, admin_client):
    ids = _long_queue(app, 22)

    resp = admin_client.post(
        f"/admin/queue/{ids[20]}/approve", data={"page": "2", "publisher": "acme"}
    )

    assert resp.status_code == 303
    assert resp.headers["Location"] == "/admin/queue?publisher=acme&page=2"
    page = admin_client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Approved queued-20 1.0.0." in page and _names(page) == ["queued-21"]


# --- Queries ----------------------------------------------------------------------------------


def _statements(app, client, path: str) -> int:
    """The statements one GET of `path` runs (tests.helpers.captured_statements)."""
    with captured_statements(app) as statements:
        assert client.get(path).status_code == 200
    seen = [statement for statement, _params in statements]
    return len(seen)


def _fill_queue(app, start: int, stop: int) -> None:
    with app.app_context():
        for i in range(start, stop):
            by = DEVELOPER if i % 2 else GLOBEX_DEV
            deps = [{"name": f"lib-{i}", "version": "^1.0"}, {"name": "auth", "type": "service"}]
            publish_manifest(manifest(f"module-{i}", "1.0.0", dependencies=deps), actor_email=by)
        db.session.remove()


def test_the_queue_page_takes_the_same_number_of_statements_for_3_and_30_releases(
    app, admin_client
):
    _fill_queue(app, 0, 3)
    admin_client.get("/admin/queue")  # warm up: the first request loads caches
    few = _statements(app, admin_client, "/admin/queue")
    _fill_queue(app, 3, 30)
    many = _statements(app, admin_client, "/admin/queue")
    assert few == many, (few, many)
    assert few <= 12


def test_the_report_takes_the_same_number_of_statements_for_1_and_12_dependencies(
    app, admin_client
):
    for i in range(12):
        _approve(app, _publish(app, f"lib-{i}", "1.0.0"))
    one = _publish(app, "small", dependencies=[{"name": "lib-0", "version": "^1"}])
    deps = [{"name": f"lib-{i}", "version": "^1"} for i in range(12)]
    twelve = _publish(app, "large", dependencies=deps)
    admin_client.get(f"/admin/queue/{one}")
    assert _statements(app, admin_client, f"/admin/queue/{one}") == _statements(
        app, admin_client, f"/admin/queue/{twelve}"
    )


# --- Presentation helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "just now"),
        (60, "1 minute ago"),
        (59 * 60, "59 minutes ago"),
        (3 * 3600 + 59, "3 hours ago"),
        (86400, "1 day ago"),
        (9 * 86400, "9 days ago"),
    ],
)
def test_ages_read_like_people_say_them(seconds, text):
    now = utcnow()
    assert time_ago(now - timedelta(seconds=seconds), now) == text


@pytest.mark.parametrize(
    ("size", "text"), [(1, "1 byte"), (1023, "1023 bytes"), (1536, "1.5 KiB"), (5 << 20, "5.0 MiB")]
)
def test_file_sizes_read_like_people_say_them(size, text):
    assert file_size(size) == text
