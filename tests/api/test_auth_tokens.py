"""Bearer authentication: JWTs from /auth/token and personal API tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from portal.extensions import db
from portal.services.accounts import users
from tests.helpers import PASSWORD, bearer, login


def _problem(resp, status):
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def test_auth_token_issues_a_jwt_that_opens_the_api(client, people):
    resp = client.post(
        "/api/v1/auth/token", json={"email": people.developer.email, "password": PASSWORD}
    )
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    events = client.get(
        "/api/v1/events", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert events.status_code == 200


def test_auth_token_gives_the_same_401_for_a_wrong_password_and_an_unknown_email(client, people):
    wrong = client.post(
        "/api/v1/auth/token", json={"email": people.developer.email, "password": "bad-bad-bad"}
    )
    unknown = client.post(
        "/api/v1/auth/token", json={"email": "nobody@x.test", "password": "bad-bad-bad"}
    )
    assert _problem(wrong, 401) == _problem(unknown, 401)


def test_auth_token_is_throttled_after_five_failures(client, people):
    for _ in range(5):
        client.post(
            "/api/v1/auth/token", json={"email": people.developer.email, "password": "bad-bad"}
        )
    resp = client.post(
        "/api/v1/auth/token", json={"email": people.developer.email, "password": PASSWORD}
    )
    _problem(resp, 429)
    assert int(resp.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    "body, status",
    [("not json", 400), ("[1, 2]", 400), ('{"email": "a@b.c"}', 422), ('{"password": 5}', 422)],
)
def test_auth_token_rejects_unreadable_or_incomplete_bodies(client, body, status):
    resp = client.post("/api/v1/auth/token", data=body, content_type="application/json")
    _problem(resp, status)


def _claims(app, user_id, **overrides):
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "aud": app.config["JWT_AUDIENCE"],
        "iss": "module-registry-service",
        "sv": 1,  # a new user's session version
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _get_events(client, token):
    return client.get("/api/v1/events", headers={"Authorization": f"Bearer {token}"})


def test_a_well_formed_jwt_signed_with_the_app_key_is_accepted(app, client, people):
    token = jwt.encode(_claims(app, people.developer.id), app.config["SECRET_KEY"], "HS256")
    assert _get_events(client, token).status_code == 200


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "alg_none",
        "no_exp",
        "other_key",
        "other_audience",
        "other_issuer",
        "no_sub",
        "no_session_version",
    ],
)
def test_bad_jwts_are_refused_with_401_problem_json(app, client, people, case):
    key = app.config["SECRET_KEY"]
    uid = people.developer.id
    past = datetime.now(UTC) - timedelta(hours=2)
    tokens = {
        "expired": lambda: jwt.encode(
            _claims(app, uid, iat=past, exp=past + timedelta(minutes=5)), key, "HS256"
        ),
        "alg_none": lambda: jwt.encode(_claims(app, uid), None, "none"),
        "no_exp": lambda: jwt.encode(_claims(app, uid, exp=None), key, "HS256"),
        "other_key": lambda: jwt.encode(
            _claims(app, uid), "another-secret-key-of-32-bytes-or-more", "HS256"
        ),
        "other_audience": lambda: jwt.encode(_claims(app, uid, aud="billing"), key, "HS256"),
        "other_issuer": lambda: jwt.encode(_claims(app, uid, iss="someone"), key, "HS256"),
        "no_sub": lambda: jwt.encode(_claims(app, uid, sub=None), key, "HS256"),
        "no_session_version": lambda: jwt.encode(_claims(app, uid, sv=None), key, "HS256"),
    }
    _problem(_get_events(client, tokens[case]()), 401)


def test_missing_or_malformed_authorization_is_401(client):
    _problem(client.get("/api/v1/events"), 401)
    _problem(client.get("/api/v1/events", headers={"Authorization": "Basic abc"}), 401)
    _problem(client.get("/api/v1/events", headers={"Authorization": "Bearer "}), 401)


def test_the_api_ignores_the_browser_session_cookie(client, people):
    client.post("/login", data={"email": people.developer.email, "password": PASSWORD})
    _problem(client.get("/api/v1/events"), 401)


def test_personal_api_token_works_until_revoked(app, client, people):
    with app.app_context():
        user = users.user_by_email(people.developer.email)
        token, plain = users.create_api_token(user, "ci")
        token_id = token.id
        db.session.remove()
    assert _get_events(client, plain).status_code == 200
    with app.app_context():
        users.revoke_api_token(token_id, actor=users.user_by_email(people.developer.email))
        db.session.remove()
    _problem(_get_events(client, plain), 401)


def test_an_unknown_personal_token_is_401(client, people):
    _problem(_get_events(client, "mrt_" + "x" * 43), 401)


def test_jwt_of_a_deactivated_user_is_refused(app, client, people):
    headers = bearer(app, people.developer.email)
    with app.app_context():
        users.user_by_email(people.developer.email).active = False
        db.session.commit()
        db.session.remove()
    _problem(client.get("/api/v1/events", headers=headers), 401)


def test_unknown_api_paths_and_methods_answer_problem_json(client):
    _problem(client.get("/api/v1/nothing-here"), 404)
    resp = client.delete("/api/v1/auth/token")
    _problem(resp, 405)


@pytest.mark.parametrize(
    "path",
    ["/api/v1/modules/?tag=a%00b", "/api/v1/events?module=a%00b"],
)
def test_nul_characters_in_the_query_are_a_400_not_a_500(app, client, people, path):
    resp = client.get(path, headers=bearer(app, people.admin.email))
    assert resp.status_code == 400


def test_a_nul_character_in_a_manifest_is_refused_never_a_500(app, client, people):
    manifest = {
        "name": "nul-module",
        "version": "1.0.0",
        "description": "has a \x00 inside",
        "author": "x",
    }
    resp = client.post(
        "/api/v1/modules/", json={"manifest": manifest}, headers=bearer(app, people.developer.email)
    )
    assert resp.status_code in (400, 422)


def test_signing_out_everywhere_ends_the_jwts_issued_before(app, client, people):
    token = client.post(
        "/api/v1/auth/token", json={"email": people.developer.email, "password": PASSWORD}
    ).get_json()["access_token"]
    assert _get_events(client, token).status_code == 200
    login(client, people.developer.email)
    assert client.post("/logout").status_code == 303  # "sign out" ends every session
    _problem(_get_events(client, token), 401)
    fresh = client.post(
        "/api/v1/auth/token", json={"email": people.developer.email, "password": PASSWORD}
    ).get_json()["access_token"]
    assert _get_events(client, fresh).status_code == 200
