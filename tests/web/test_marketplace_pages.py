"""The marketplace (/) and module pages: the htmx partial contract, filters, paging that
keeps its state, the module page's content and package download, the install button, and
a constant number of SQL statements whatever the number of modules or the page size."""

from __future__ import annotations

import hashlib
import re

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Company, Installation, ModuleRelease
from portal.services.accounts import users
from portal.services.review import decisions
from tests.helpers import (
    ACME_ADMIN,
    ACME_DEV,
    ADMIN,
    GLOBEX_ADMIN,
    GLOBEX_DEV,
    bearer,
    bulk_modules,
    captured_statements,
    login,
    publish_manifest,
    publish_package,
)
from tests.packaging import manifest, manifest_yaml, zip_package

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "api_key": {"type": "string", "writeOnly": True, "description": "Supplier API key"},
        "currency": {"type": "string", "enum": ["EUR", "USD"], "default": "EUR"},
        "database": {
            "type": "object",
            "description": "Where orders are kept",
            "properties": {
                "host": {"type": "string", "format": "hostname", "description": "DB host"},
                "password": {"type": "string", "format": "password"},
            },
            "required": ["host"],
        },
        "retries": {"type": "integer", "description": "How often to retry"},
    },
    "required": ["api_key", "database"],
}


def approve(module_id: int, status: str = "approved") -> None:
    admin = users.user_by_email(ADMIN)
    decisions.change_status(module_id, "approved", actor=admin)
    if status == "deprecated":
        decisions.change_status(module_id, "deprecated", actor=admin)


def release(name, version="1.0.0", *, status="approved", by=ACME_DEV, **extra) -> int:
    published = publish_manifest(manifest(name, version, **extra), actor_email=by)
    module_id = published.id
    if status != "pending":
        approve(module_id, status)
    return module_id


def cards(html: str) -> list[str]:
    return re.findall(r'data-name="([^"]+)" data-testid="module-card"', html)


def hrefs(html: str) -> list[str]:
    return [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', html)]


def link_to_page(html: str, number: int) -> str:
    """The one link of the pager that leads to page `number`."""
    (link,) = [h for h in hrefs(html) if re.search(rf"[?&]page={number}(&|$)", h)]
    return link


@pytest.fixture
def market(app, people):
    with app.app_context():
        release(
            "purchasing",
            display_name="Purchasing",
            category="operations",
            tags=["erp", "procurement"],
        )
        release("invoicing", category="finance", tags=["erp"])
        release("payroll", category="finance", tags=["hr"], by=GLOBEX_DEV)
        release("drafts", status="pending")
        db.session.remove()
    return people


# --- The htmx contract ---------------------------------------------------------------------


def test_the_full_page_has_a_search_form_that_works_with_and_without_htmx(client, market):
    login(client, ACME_ADMIN)
    resp = client.get("/")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" in html
    assert "HX-Request" in resp.headers["Vary"]
    search = re.search(r'<input type="search"[^>]*>', html, re.S).group(0)
    for attribute in (
        'name="q"',
        'hx-get="/"',
        'hx-trigger="input changed delay:300ms, search"',
        'hx-target="#results"',
        'hx-push-url="true"',
    ):
        assert attribute in search
    form = re.search(r'<form id="market-search"[^>]*>', html).group(0)
    assert 'method="get"' in form and 'action="/"' in form
    assert '<button type="submit"' in html
    assert cards(html) == ["invoicing", "payroll", "purchasing"]


def test_an_htmx_request_gets_only_the_results(htmx_client, market):
    login(htmx_client, ACME_ADMIN)
    resp = htmx_client.get("/?q=purch")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "<html" not in html and 'id="market-search"' not in html
    assert "HX-Request" in resp.headers["Vary"]
    assert cards(html) == ["purchasing"]
    assert 'data-testid="result-count">1 module for' in html


def test_a_history_restore_gets_the_whole_page(htmx_client, market):
    login(htmx_client, ACME_ADMIN)
    resp = htmx_client.get("/?q=purch", headers={"HX-History-Restore-Request": "true"})
    html = resp.get_data(as_text=True)
    assert "<html" in html and 'value="purch"' in html
    assert cards(html) == ["purchasing"]


def test_the_page_shows_the_results_of_its_url(client, market):
    login(client, ACME_ADMIN)
    html = client.get("/?q=purch&category=operations&sort=name").get_data(as_text=True)
    assert cards(html) == ["purchasing"]
    assert 'value="purch"' in html
    assert '<option value="operations" selected>' in html
    assert '<option value="name" selected>' in html


def test_cards_show_the_latest_version_publisher_tags_and_usage(app, client, market):
    with app.app_context():
        release("purchasing", "1.1.0", display_name="Purchasing", tags=["erp", "procurement"])
        db.session.remove()
    login(client, ACME_ADMIN)
    html = client.get("/").get_data(as_text=True)
    card = html.split('data-name="purchasing"', 1)[1].split("</article>", 1)[0]
    assert '<a href="/modules/purchasing">Purchasing</a>' in card
    assert '<span data-testid="version">1.1.0</span>' in card
    assert "purchasing for XERPIUM" in card
    assert '<span data-testid="publisher">Acme</span>' in card
    assert '<a class="tag" href="/?tag=procurement">procurement</a>' in card
    assert "Used by 0 companies" in card
    assert cards(html).count("purchasing") == 1


def test_cards_and_module_pages_count_the_companies_using_a_module(app, client, market):
    with app.app_context():
        module_id = db.session.execute(
            sa.select(ModuleRelease.id).where(ModuleRelease.name == "purchasing")
        ).scalar()
        companies = dict(db.session.execute(sa.select(Company.slug, Company.id)).all())
        rows = [
            ("acme", "installed"),
            ("globex", "installed"),
            ("globex", "uninstalled"),  # an old record of the same company
        ]
        db.session.execute(
            sa.insert(Installation),
            [
                {
                    "company_id": companies[slug],
                    "module_name": "purchasing",
                    "module_id": module_id,
                    "status": status,
                }
                for slug, status in rows
            ],
        )
        db.session.commit()
        db.session.remove()
    login(client, ACME_ADMIN)
    html = client.get("/").get_data(as_text=True)
    usage = dict(re.findall(r'data-name="([^"]+)".*?data-testid="usage">([^<]+)<', html, re.S))
    assert usage == {
        "invoicing": "Used by 0 companies",
        "payroll": "Used by 0 companies",
        "purchasing": "Used by 2 companies",
    }
    with app.app_context():
        db.session.execute(
            sa.update(Installation)
            .where(Installation.company_id == companies["acme"])
            .values(status="uninstalled")
        )
        db.session.commit()
        db.session.remove()
    page = client.get("/modules/purchasing").get_data(as_text=True)
    assert "used by 1 company<" in page


# --- Filters, sort, paging -----------------------------------------------------------------


def test_filter_menus_are_filled_from_the_data(client, market):
    login(client, ACME_ADMIN)
    html = client.get("/").get_data(as_text=True)
    for value, label in (
        ("operations", "operations"),
        ("finance", "finance"),
        ("erp", "erp"),
        ("hr", "hr"),
        ("acme", "Acme"),
        ("globex", "Globex"),
    ):
        assert f'<option value="{value}">{label}</option>' in html
    # A pending release is nobody's card, and none of its values fill a menu.
    assert "drafts" not in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("category=finance", ["invoicing", "payroll"]),
        ("tag=erp", ["invoicing", "purchasing"]),
        ("publisher=globex", ["payroll"]),
        ("publisher=acme&tag=erp&category=finance", ["invoicing"]),
        ("category=nothing", []),
        ("sort=name", ["invoicing", "payroll", "purchasing"]),
        ("sort=-created_at", ["payroll", "invoicing", "purchasing"]),
    ],
)
def test_filters_and_sort(htmx_client, market, query, expected):
    login(htmx_client, GLOBEX_ADMIN)
    assert cards(htmx_client.get(f"/?{query}").get_data(as_text=True)) == expected


def test_bad_values_in_the_url_never_fail_the_page(client, market):
    login(client, ACME_ADMIN)
    bad = ("page=abc", "per_page=-3", "page=0", "sort=bogus", "page=999", "tag=%00", "q=%00")
    bad += ("page=%C2%B2", "per_page=%D9%A3", "page=" + "9" * 40, "page=1000001")
    for query in (*bad, "publisher=%00&category=%00"):
        assert client.get(f"/?{query}").status_code == 200, query


@pytest.fixture
def many(app, people):
    """25 approved modules tagged erp (mod-00 … mod-24) and one other."""
    with app.app_context():
        for i in range(25):
            release(f"mod-{i:02d}", tags=["erp"], description="A numbered module")
        release("other", tags=["misc"], description="A numbered module")
        db.session.remove()


def test_paging_links_keep_the_query_and_filters(htmx_client, many):
    login(htmx_client, ACME_ADMIN)
    html = htmx_client.get("/?q=numbered&tag=erp&sort=name&per_page=10").get_data(as_text=True)
    assert cards(html) == [f"mod-{i:02d}" for i in range(10)]
    assert "Page 1 of 3" in html
    next_link = link_to_page(html, 2)
    for part in ("q=numbered", "tag=erp", "sort=name", "per_page=10"):
        assert part in next_link
    assert f'hx-get="{next_link.replace("&", "&amp;")}"' in html
    page2 = htmx_client.get(next_link).get_data(as_text=True)
    assert cards(page2) == [f"mod-{i:02d}" for i in range(10, 20)]
    prev_link = link_to_page(page2, 1)
    assert "tag=erp" in prev_link and "q=numbered" in prev_link
    page3 = htmx_client.get(link_to_page(page2, 3)).get_data(as_text=True)
    assert cards(page3) == [f"mod-{i:02d}" for i in range(20, 25)]
    assert "Next" not in page3


# --- The module page -----------------------------------------------------------------------


@pytest.fixture
def module_page(app, people):
    """purchasing 1.0.0 (approved, with a package and a config_schema) depending on
    base-objects and a platform service; 0.9.0 deprecated; 2.0.0 pending."""
    with app.app_context():
        release("base-objects")
        release("purchasing", "0.9.0", status="deprecated")
        data = zip_package(
            manifest_yaml(
                "purchasing",
                "1.0.0",
                display_name="Purchasing",
                config_schema=CONFIG_SCHEMA,
                dependencies=[
                    {"name": "base-objects", "version": ">=1.0.0"},
                    {"name": "auth-service", "version": "*", "type": "service"},
                ],
            )
        )
        published = publish_package(data, actor_email=ACME_DEV)
        approve(published.id)
        release("purchasing", "2.0.0", status="pending")
        db.session.remove()
    return data


def test_the_module_page_shows_the_latest_approved_release_by_default(client, module_page):
    login(client, GLOBEX_ADMIN)
    html = client.get("/modules/purchasing").get_data(as_text=True)
    assert re.search(r"<h1>Purchasing <small[^>]*>1\.0\.0</small>", html)
    assert "purchasing for XERPIUM" in html
    assert 'data-version="1.0.0" aria-current="true"' in html


def test_the_module_page_shows_the_configuration_it_expects(client, module_page):
    login(client, GLOBEX_ADMIN)
    html = client.get("/modules/purchasing").get_data(as_text=True)
    table = html.split('id="config-fields"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr data-field="([^"]+)">(.*?)</tr>', table, re.S)
    # By name (the same on both databases: JSONB does not keep key order).
    assert [name for name, _ in rows] == [
        "api_key",
        "currency",
        "database",
        "database.host",
        "database.password",
        "retries",
    ]
    cells = {
        name: [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
        for name, row in rows
    }
    assert cells["api_key"][1:3] == ["string", "yes"] and "Supplier API key" in cells["api_key"][3]
    assert cells["currency"][1:3] == ["string (one of EUR, USD)", "no"]
    assert cells["database.host"][1:] == ["string (hostname)", "yes", "DB host"]
    assert cells["database.password"][2] == "no"
    assert cells["retries"][1:] == ["integer", "no", "How often to retry"]
    secret_rows = [name for name, row in rows if 'data-testid="secret"' in row]
    assert secret_rows == ["api_key", "database.password"]


def test_config_fields_follow_local_refs_and_describe_arrays():
    from portal.services.catalog.cards import config_fields

    schema = {
        "type": "object",
        "$defs": {
            "secret": {"type": "string", "writeOnly": True},
            "server": {
                "type": "object",
                "properties": {"url": {"type": "string", "format": "uri"}},
                "required": ["url"],
            },
        },
        "properties": {
            "token": {"$ref": "#/$defs/secret", "description": "Runtime token"},
            "primary": {"$ref": "#/$defs/server"},
            "zones": {"type": "array", "items": {"type": "string"}},
            "mode": {"type": ["string", "null"]},
        },
        "required": ["primary"],
    }
    fields = {f.name: f for f in config_fields(schema)}
    assert list(fields) == ["token", "primary", "primary.url", "zones", "mode"]  # as written
    assert fields["token"].secret and fields["token"].description == "Runtime token"
    assert fields["primary.url"].required and fields["primary.url"].type == "string (uri)"
    assert fields["zones"].type == "array of string"
    assert fields["mode"].type == "string or null"
    assert config_fields(None) == [] and config_fields({"type": "object"}) == []


def test_dependencies_link_to_their_module_pages(client, module_page):
    login(client, GLOBEX_ADMIN)
    html = client.get("/modules/purchasing").get_data(as_text=True)
    deps = re.findall(r'<li data-testid="dependency">(.*?)</li>', html, re.S)
    assert '<a href="/modules/base-objects">base-objects</a>' in deps[0]
    assert "&gt;=1.0.0" in deps[0]
    assert "auth-service" in deps[1] and "<a" not in deps[1] and "platform service" in deps[1]
    assert client.get("/modules/base-objects").status_code == 200


def test_the_package_digest_is_shown_and_the_download_is_the_exact_bytes(client, module_page):
    data = module_page
    digest = hashlib.sha256(data).hexdigest()
    login(client, GLOBEX_ADMIN)
    html = client.get("/modules/purchasing").get_data(as_text=True)
    assert f'<code data-testid="digest">{digest}</code>' in html
    assert 'href="/modules/purchasing/1.0.0/package"' in html
    resp = client.get("/modules/purchasing/1.0.0/package")
    assert resp.status_code == 200 and resp.data == data
    assert resp.headers["ETag"] == f'"{digest}"'
    assert resp.headers["Content-Disposition"] == "attachment; filename=purchasing-1.0.0.zip"
    assert resp.headers["Content-Length"] == str(len(data))
    again = client.get(
        "/modules/purchasing/1.0.0/package", headers={"If-None-Match": f'"{digest}"'}
    )
    assert again.status_code == 304
    # A manifest-only release has no package; an unknown version is absent.
    assert client.get("/modules/purchasing/0.9.0/package").status_code == 404
    assert client.get("/modules/purchasing/9.9.9/package").status_code == 404
    assert client.get("/modules/purchasing/2.0.0/package").status_code == 404


def test_the_download_needs_a_session(client, module_page):
    resp = client.get("/modules/purchasing/1.0.0/package")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_unapproved_versions_only_for_the_publisher_and_admins(client, module_page):
    def version_rows(email):
        fresh = client.application.test_client()
        login(fresh, email)
        html = fresh.get("/modules/purchasing").get_data(as_text=True)
        return re.findall(r'<tr data-version="([^"]+)"', html)

    assert version_rows(GLOBEX_ADMIN) == ["1.0.0", "0.9.0"]
    assert version_rows(ACME_DEV) == ["2.0.0", "1.0.0", "0.9.0"]
    assert version_rows(ADMIN) == ["2.0.0", "1.0.0", "0.9.0"]
    login(client, GLOBEX_ADMIN)
    assert client.get("/modules/purchasing?version=2.0.0").status_code == 404
    assert client.get("/modules/nothing-here").status_code == 404
    assert client.get("/modules/purch%00asing").status_code == 404
    assert client.get("/modules/purchasing/1.0.0%00/package").status_code == 404


def test_deprecated_releases_are_marked(client, module_page):
    login(client, GLOBEX_ADMIN)
    html = client.get("/modules/purchasing").get_data(as_text=True)
    row = html.split('<tr data-version="0.9.0"', 1)[1].split("</tr>", 1)[0]
    assert "badge-deprecated" in row and "not for new installs" in row
    page = client.get("/modules/purchasing?version=0.9.0").get_data(as_text=True)
    assert 'data-testid="deprecated-note"' in page
    assert 'data-testid="install"' not in page


@pytest.mark.parametrize(
    ("email", "shown"),
    [(ACME_ADMIN, True), (GLOBEX_ADMIN, True), (ACME_DEV, False), (ADMIN, False)],
)
def test_the_install_button_is_for_company_admins(client, module_page, email, shown):
    login(client, email)
    html = client.get("/modules/purchasing").get_data(as_text=True)
    assert ('data-testid="install"' in html) is shown


def test_the_install_button_links_to_the_plan(client, module_page):
    login(client, ACME_ADMIN)
    html = client.get("/modules/purchasing").get_data(as_text=True)
    link = re.search(r'<a class="button primary" href="([^"]+)" data-testid="install"', html)
    assert link and link.group(1).startswith("/modules/purchasing/install")


# --- Statements: no N+1 --------------------------------------------------------------------


def statements_for(app, client, path: str, headers=None, expect_items: int | None = None):
    with captured_statements(app) as statements:
        resp = client.get(path, headers=headers or {})
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    if expect_items is not None:
        body = resp.get_json()
        found = len(body["items"]) if body else len(cards(resp.get_data(as_text=True)))
        assert found == expect_items
    return len(statements)


def test_the_marketplace_and_the_api_list_use_the_same_statements_for_10_or_1000_modules(
    app, client, people
):
    bulk_modules(app, 0, 10)
    login(client, ACME_ADMIN)
    api = bearer(app, ACME_ADMIN)
    htmx = {"HX-Request": "true"}
    paths = {
        "page 20": ("/?per_page=20", None),
        "page 100": ("/?per_page=100", None),
        "partial 20": ("/?per_page=20&q=bulk", htmx),
        "partial 100": ("/?per_page=100&q=bulk", htmx),
        "api 20": ("/api/v1/modules/?per_page=20", api),
        "api 100": ("/api/v1/modules/?per_page=100", api),
        "api latest 100": ("/api/v1/modules/?per_page=100&latest=true&q=bulk", api),
    }
    # Warm up (first-request setup, cached statements) before counting.
    for path, headers in paths.values():
        statements_for(app, client, path, headers)
    small = {
        key: statements_for(app, client, *spec, expect_items=10) for key, spec in paths.items()
    }

    bulk_modules(app, 10, 1000)
    large = {}
    for key, (path, headers) in paths.items():
        size = 100 if "100" in key else 20
        large[key] = statements_for(app, client, path, headers, expect_items=size)

    assert large == small, f"10 modules: {small}; 1000 modules: {large}"
    for kind in ("page", "partial", "api"):
        assert small[f"{kind} 20"] == small[f"{kind} 100"], small
