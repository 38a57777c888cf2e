"""CSRF stays on here (TestConfig turns it off elsewhere): forms and htmx need the token.
`csrf_app` (tests/conftest.py) is the app with CSRF protection on."""

from __future__ import annotations

import re

from portal.extensions import db
from portal.models import ApiToken
from tests.helpers import PASSWORD, count


def _token_from(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def _signed_in(csrf_app, email):
    client = csrf_app.test_client()
    token = _token_from(client.get("/login").get_data(as_text=True))
    resp = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 303
    return client


def _tokens(csrf_app) -> int:
    with csrf_app.app_context():
        n = count(ApiToken)
        db.session.remove()
        return n


def test_sign_in_without_the_csrf_token_is_refused(csrf_app, people):
    client = csrf_app.test_client()
    resp = client.post("/login", data={"email": people.developer.email, "password": PASSWORD})
    assert resp.status_code == 400
    assert client.get("/tokens").status_code == 302


def test_a_form_post_without_the_csrf_token_is_refused_and_changes_nothing(csrf_app, people):
    client = _signed_in(csrf_app, people.developer.email)
    resp = client.post("/tokens", data={"name": "pipeline"})
    assert resp.status_code == 400
    assert "CSRF" in resp.get_data(as_text=True)
    assert _tokens(csrf_app) == 0


def test_an_htmx_post_without_the_header_is_refused_and_changes_nothing(csrf_app, people):
    client = _signed_in(csrf_app, people.developer.email)
    resp = client.post("/tokens", data={"name": "pipeline"}, headers={"HX-Request": "true"})
    assert resp.status_code == 400
    assert resp.headers["HX-Retarget"] == "#flash"
    assert _tokens(csrf_app) == 0


def test_an_htmx_post_with_the_header_from_the_layout_is_accepted(csrf_app, people):
    client = _signed_in(csrf_app, people.developer.email)
    page = client.get("/tokens").get_data(as_text=True)
    header_token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1)
    resp = client.post(
        "/tokens",
        data={"name": "pipeline"},
        headers={"HX-Request": "true", "X-CSRFToken": header_token},
    )
    assert resp.status_code == 201
    assert _tokens(csrf_app) == 1


def test_the_json_api_needs_no_csrf_token(csrf_app, people):
    client = csrf_app.test_client()
    resp = client.post(
        "/api/v1/auth/token", json={"email": people.developer.email, "password": PASSWORD}
    )
    assert resp.status_code == 200
