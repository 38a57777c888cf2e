"""The /tokens page: create (shown once), list, revoke."""

from __future__ import annotations

import re

from portal.extensions import db
from portal.models import ApiToken
from portal.services.accounts import users
from tests.helpers import count, login


def test_a_new_token_is_shown_once_and_stored_hashed(app, client, people):
    login(client, people.developer.email)
    resp = client.post("/tokens", data={"name": "pipeline"})
    assert resp.status_code == 201
    plain = re.search(r"(mrt_[A-Za-z0-9_-]+)", resp.get_data(as_text=True)).group(1)
    assert plain not in client.get("/tokens").get_data(as_text=True)
    with app.app_context():
        stored = db.session.execute(db.select(ApiToken)).scalar_one()
        assert plain not in (stored.token_hash, stored.prefix)
        assert users.user_for_bearer(plain).email == people.developer.email


def test_htmx_create_returns_only_the_tokens_fragment(htmx_client, people):
    login(htmx_client, people.developer.email)
    resp = htmx_client.post("/tokens", data={"name": "pipeline"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 201
    assert "<html" not in html and "mrt_" in html
    assert "HX-Request" in resp.headers["Vary"]


def test_a_blank_token_name_is_422_and_stores_nothing(app, client, people):
    login(client, people.developer.email)
    resp = client.post("/tokens", data={"name": ""})
    assert resp.status_code == 422
    with app.app_context():
        assert count(ApiToken) == 0


def test_revoking_own_token_marks_it_revoked(app, client, people):
    login(client, people.developer.email)
    client.post("/tokens", data={"name": "pipeline"})
    with app.app_context():
        token_id = db.session.execute(db.select(ApiToken.id)).scalar_one()
    resp = client.post(f"/tokens/{token_id}/revoke")
    assert resp.status_code == 303
    assert "revoked" in client.get("/tokens").get_data(as_text=True)


def test_revoking_another_users_token_is_404_and_changes_nothing(app, client, people):
    with app.app_context():
        owner = users.user_by_email(people.globex_dev.email)
        token, _ = users.create_api_token(owner, "theirs")
        token_id = token.id
        db.session.remove()
    login(client, people.developer.email)
    assert client.post(f"/tokens/{token_id}/revoke").status_code == 404
    with app.app_context():
        assert db.session.get(ApiToken, token_id).revoked_at is None


def test_htmx_revoke_brings_its_message_out_of_band_and_leaves_none_for_later(
    app, htmx_client, people
):
    login(htmx_client, people.developer.email)
    htmx_client.post("/tokens", data={"name": "pipeline"})
    with app.app_context():
        token_id = db.session.execute(db.select(ApiToken.id)).scalar_one()
    html = htmx_client.post(f"/tokens/{token_id}/revoke").get_data(as_text=True)
    assert 'hx-swap-oob="innerHTML"' in html and "Token revoked." in html
    assert "Token revoked." not in htmx_client.get("/tokens", headers={"HX-Request": ""}).text


def test_the_tokens_page_shows_when_each_token_was_last_used(app, client, people):
    login(client, people.developer.email)
    client.post("/tokens", data={"name": "pipeline"})
    cell = re.compile(r'<td data-testid="last-used">(.*?)</td>')
    assert "never" in cell.search(client.get("/tokens").get_data(as_text=True)).group(1)
    with app.app_context():
        _token, plain = users.create_api_token(users.user_by_email(people.developer.email), "ci")
        db.session.remove()
    resp = client.get("/api/v1/events", headers={"Authorization": f"Bearer {plain}"})
    assert resp.status_code == 200
    cells = cell.findall(client.get("/tokens").get_data(as_text=True))
    assert len(cells) == 2 and sum("UTC" in c for c in cells) == 1
