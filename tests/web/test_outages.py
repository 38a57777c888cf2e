"""A database or Redis that does not answer is an outage, not a bug: 503 with Retry-After,
problem+json for the API, a product error page for people (api.md, product.md). The
restart drill (tests/drills) shows the same under load and the recovery."""

from __future__ import annotations

import pytest

from portal import create_app
from portal.config import TestConfig
from tests.helpers import problem_of


@pytest.fixture
def unreachable_app(tmp_path):
    """The app with its database on a port where nothing listens."""
    app = create_app(
        TestConfig(
            "postgresql://postgres@127.0.0.1:1/nothing",
            MODULE_STORAGE_PATH=str(tmp_path / "packages"),
            INSTANCE_PATH=str(tmp_path),
        )
    )
    return app


def test_an_api_request_while_the_database_is_away_is_a_503_with_retry_after(unreachable_app):
    client = unreachable_app.test_client()
    resp = client.get("/api/v1/installations/", headers={"Authorization": "Bearer mrt_" + "x" * 40})
    body = problem_of(resp, 503)
    assert body["title"] == "Service unavailable"
    assert resp.headers["Retry-After"].isdigit()


def test_a_page_while_the_database_is_away_is_a_product_error_page(unreachable_app):
    client = unreachable_app.test_client()
    resp = client.post("/login", data={"email": "a@b.c", "password": "x"})
    assert resp.status_code == 503
    assert resp.mimetype == "text/html" and resp.headers["Retry-After"]
    page = resp.get_data(as_text=True)
    assert "try again shortly" in page and "Traceback" not in page


def test_htmx_gets_the_outage_in_the_flash(unreachable_app):
    client = unreachable_app.test_client()
    resp = client.post(
        "/login", data={"email": "a@b.c", "password": "x"}, headers={"HX-Request": "true"}
    )
    assert resp.status_code == 503 and "<html" not in resp.get_data(as_text=True)
    assert resp.headers["HX-Retarget"] == "#flash"
