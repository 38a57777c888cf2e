"""Search results and filter menus kept under the catalog generation: a repeated search
skips the ranking, and any write to modules or companies (through a service, another
process or plain SQL) is seen by the very next search and menu, per visibility scope."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from portal import create_app
from portal.config import TestConfig
from portal.extensions import db
from portal.models import CatalogGeneration
from portal.services.accounts import users
from portal.services.catalog.cache import LruCache, catalog_generation
from portal.services.publishing import releases
from portal.services.review import decisions
from tests.helpers import (
    ACME_ADMIN,
    ACME_DEV,
    ADMIN,
    GLOBEX_ADMIN,
    bearer,
    captured_statements,
    login,
    publish_manifest,
)
from tests.packaging import manifest


@pytest.fixture
def cached(app):
    app.config["CATALOG_CACHE_ENTRIES"] = 64
    app.extensions.pop("catalog_cache", None)
    yield app
    app.config["CATALOG_CACHE_ENTRIES"] = 0
    app.extensions.pop("catalog_cache", None)


def release(name, *, status="approved", visibility=None, **fields) -> int:
    """Publish a manifest-only release and approve it (needs an app context)."""
    published = publish_manifest(
        manifest(name, **fields), actor_email=ACME_DEV, visibility=visibility
    )
    if status == "approved":
        decisions.change_status(published.id, "approved", actor=users.user_by_email(ADMIN))
    return published.id


@pytest.fixture
def shelf(app, people):
    with app.app_context():
        ids = {
            "ledger": release("ledger", description="General accounts", category="finance"),
            "payroll": release("payroll", description="Pays people", category="hr"),
        }
        db.session.remove()
    return ids


def statements_of(app, call) -> tuple[object, list[str]]:
    with captured_statements(app) as statements:
        result = call()
    return result, [text for text, _ in statements]


def search(app, client, q: str, email: str = ACME_ADMIN) -> list[str]:
    resp = client.get(
        "/api/v1/modules/", query_string={"q": q, "latest": "true"}, headers=bearer(app, email)
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    return [item["name"] for item in resp.get_json()["items"]]


def ranked(statements: list[str]) -> list[str]:
    return [s for s in statements if "OVER ()" in s]


def modules_read(statements: list[str]) -> list[str]:
    return [s for s in statements if re.search(r"\bFROM modules\b", s)]


def generation(app) -> int:
    with app.app_context():
        value = db.session.execute(sa.select(CatalogGeneration.generation)).scalar_one()
        db.session.remove()
    return value


def test_a_repeated_search_skips_the_ranking(app, client, shelf, cached):
    first, statements = statements_of(app, lambda: search(app, client, "ledger"))
    assert first == ["ledger"] and ranked(statements)
    again, statements = statements_of(app, lambda: search(app, client, "ledger"))
    assert again == first and not ranked(statements)
    assert not modules_read(statements)  # the releases' JSON is kept too
    # Other arguments are another search.
    _, statements = statements_of(app, lambda: search(app, client, "ledger accounts"))
    assert ranked(statements)


def _without_csrf_tokens(page: bytes) -> bytes:
    """The page less its CSRF tokens, which carry the second they were signed in."""
    return re.sub(rb'"X-CSRFToken": "[^"]*"|name="csrf_token" value="[^"]*"', b"", page)


def test_a_repeated_marketplace_page_reads_no_release(app, client, shelf, cached):
    login(client, ACME_ADMIN)
    first, statements = statements_of(app, lambda: client.get("/?q=ledger").get_data())
    assert b'data-name="ledger"' in first and modules_read(statements)
    again, statements = statements_of(app, lambda: client.get("/?q=ledger").get_data())
    assert _without_csrf_tokens(again) == _without_csrf_tokens(first)
    assert not modules_read(statements)


def test_without_the_cache_every_search_ranks(app, client, shelf):
    search(app, client, "ledger")
    _, statements = statements_of(app, lambda: search(app, client, "ledger"))
    assert ranked(statements)


def _approve_new(app, ids):
    release("zebra-stripes", description="Zebra")


def _edit_description(app, ids):
    releases.update_release(
        ids["payroll"], {"description": "Pays zebra keepers"}, actor=users.user_by_email(ADMIN)
    )


def _plain_sql(app, ids):
    db.session.execute(
        sa.text("UPDATE modules SET description = 'zebra crossing' WHERE id = :id"),
        {"id": ids["ledger"]},
    )
    db.session.commit()


@pytest.mark.parametrize("write", [_approve_new, _edit_description, _plain_sql])
def test_any_write_to_the_catalog_is_seen_by_the_next_search(app, client, shelf, cached, write):
    assert search(app, client, "zebra") == []  # now kept: nothing matches
    before = generation(app)
    with app.app_context():
        write(app, shelf)
        db.session.remove()
    assert generation(app) > before
    assert search(app, client, "zebra") != []


@pytest.mark.truncate
def test_another_process_sees_a_change_made_elsewhere(app, client, shelf, cached, storage_dir):
    """Two app instances, each with its own cache (as two gunicorn workers): a change
    made through one is seen by the other's next search, not after some time."""
    other = create_app(
        TestConfig(
            app.config["SQLALCHEMY_DATABASE_URI"],
            MODULE_STORAGE_PATH=str(storage_dir / "packages"),
            INSTANCE_PATH=str(storage_dir / "instance"),
            CATALOG_CACHE_ENTRIES=64,
        )
    )
    try:
        other_client = other.test_client()
        assert search(other, other_client, "ledger") == ["ledger"]
        with app.app_context():
            admin = users.user_by_email(ADMIN)
            decisions.change_status(shelf["ledger"], "deprecated", actor=admin)
            db.session.remove()
        assert search(other, other_client, "ledger") == []
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


def menu(client, name: str) -> list[str]:
    html = client.get("/").get_data(as_text=True)
    select = re.search(rf'<select id="{name}".*?</select>', html, re.S).group(0)
    return [v for v in re.findall(r'<option value="([^"]*)"', select) if v]


def test_filter_menus_are_kept_per_company_and_follow_changes(app, client, shelf, cached):
    with app.app_context():
        release("acme-secret", visibility="private", category="secret-category")
        db.session.remove()
    login(client, ACME_ADMIN)
    assert "secret-category" in menu(client, "category")
    _, statements = statements_of(app, lambda: menu(client, "category"))
    assert not [s for s in statements if "SELECT DISTINCT" in s]  # kept, not read again
    # globex's menus are its own, not acme's kept ones: the private category is absent.
    login(client, GLOBEX_ADMIN)
    assert "secret-category" not in menu(client, "category")
    with app.app_context():
        release("newcomer", category="brand-new")
        db.session.remove()
    assert "brand-new" in menu(client, "category")


def test_the_cache_keeps_the_most_recently_used_entries():
    cache = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert len(cache) == 2
    assert cache.get("b") != 2 and cache.get("a") == 1 and cache.get("c") == 3


def test_a_request_that_commits_a_change_reads_the_generation_again(app, shelf, cached):
    with app.test_request_context("/"):
        before = catalog_generation()
        decisions.change_status(shelf["ledger"], "deprecated", actor=users.user_by_email(ADMIN))
        assert catalog_generation() > before
        db.session.remove()
