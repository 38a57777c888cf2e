"""Every JSON request body is checked against the schema the OpenAPI document publishes
(issue 11, item 5): an unknown key, a wrong type, or several mistakes at once is a 422 that
names every mistake with its JSON Pointer, and nothing is written (no row, no event)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from portal.api.openapi import build_openapi
from portal.extensions import db
from tests.helpers import approved_shelf, bearer, error_pointers, problem_of

INVENTORY_SCHEMA = {"type": "object", "properties": {"warehouse": {"type": "string"}}}


@pytest.fixture
def world(app, people, client):
    """acme's approved shelf (inventory, purchasing, notes), a pending release of acme's,
    and notes installed for acme; ids by name, bearer headers by role."""
    from tests.helpers import publish_manifest

    with app.app_context():
        ids = approved_shelf({"1.0.0": INVENTORY_SCHEMA}, {"type": "object"})
        ids["pending"] = publish_manifest(
            {"name": "drafts", "version": "0.1.0", "description": "d", "author": "T"},
            actor_email=people.developer.email,
        ).id
        db.session.remove()
    headers = {
        "developer": bearer(app, people.developer.email),
        "acme": bearer(app, people.acme_admin.email),
        "admin": bearer(app, people.admin.email),
    }
    resp = client.post("/api/v1/installations/", json={"module": "notes"}, headers=headers["acme"])
    assert resp.status_code == 201, resp.get_data(as_text=True)
    ids["installation"] = resp.get_json()["id"]
    return ids, headers


def _every_row(app) -> dict[str, list]:
    """Every row of every table, to show that a refused request wrote nothing."""
    with app.app_context():
        with db.engine.connect() as conn:
            state = {
                table.name: sorted(map(repr, conn.execute(sa.select(table)).all()))
                for table in db.metadata.sorted_tables
            }
        db.session.remove()
    return state


# (method, path, role, valid-ish base body, wrong-type field, several mistakes → pointers)
BODIES = {
    "token": ("POST", "/api/v1/auth/token", None, {"email": "dev@acme.test", "password": "x"}),
    "publish": ("POST", "/api/v1/modules/", "developer", {"manifest_yaml": "name: x"}),
    "edit": ("PUT", "/api/v1/modules/{pending}", "developer", {"description": "Better"}),
    "status": ("PATCH", "/api/v1/modules/{pending}/status", "admin", {"status": "approved"}),
    "plan": ("POST", "/api/v1/installations/plan", "acme", {"module": "inventory"}),
    "install": ("POST", "/api/v1/installations/", "acme", {"module": "inventory"}),
    "update": ("PUT", "/api/v1/installations/{installation}", "acme", {"config": {}}),
    "rollback": ("POST", "/api/v1/installations/{installation}/rollback", "acme", {}),
    "heartbeat": (
        "POST",
        "/api/v1/installations/{installation}/heartbeat",
        "acme",
        {"status": "healthy"},
    ),
}
# A field of the right name but the wrong type, per body.
WRONG_TYPES = {
    "token": {"password": 1234},
    "publish": {"visibility": ["public"]},
    "edit": {"tags": "erp"},
    "status": {"reason": 7},
    "plan": {"module_id": "12"},
    "install": {"install_dependencies": "yes"},
    "update": {"version": 2},
    "rollback": {"revision": "2"},
    "heartbeat": {"message": {"text": "ok"}},
}
# Several mistakes at once: {field: value} → the pointers expected.
SEVERAL = {
    "token": (
        {"email": 1, "password": None, "remember": True},
        ["/email", "/password", "/remember"],
    ),
    "publish": (
        {"visibility": "secret", "sha256": "abc", "tags": []},
        ["/sha256", "/tags", "/visibility"],
    ),
    "edit": (
        {"visibility": "hidden", "description": "x" * 501, "visibilty": "private"},
        ["/description", "/visibility", "/visibilty"],
    ),
    "status": ({"status": "approve", "reason": False, "why": "x"}, ["/reason", "/status", "/why"]),
    "plan": (
        {"module_id": True, "config": [], "dependency_configs": {"a": 1}},
        ["/config", "/dependency_configs/a", "/module_id"],
    ),
    "install": (
        {"module": 5, "company": ["acme"], "confg": {}},
        ["/company", "/confg", "/module"],
    ),
    "update": (
        {"config": "x", "endpoint_url": 5, "company": "globex", "revision": 1.5},
        ["/company", "/config", "/endpoint_url", "/revision"],
    ),
    "rollback": (
        {"revision": None, "expected_revision": "x", "to": 1},
        ["/expected_revision", "/revision", "/to"],
    ),
    "heartbeat": (
        {"status": "fine", "message": 1, "latency": 3},
        ["/latency", "/message", "/status"],
    ),
}


def _send(client, world, name, changes, *, drop=()):
    ids, headers = world
    method, path, role, base = BODIES[name]
    body = {k: v for k, v in {**base, **changes}.items() if k not in drop}
    return client.open(
        path.format(**ids),
        method=method,
        json=body,
        headers=headers[role] if role else {},
    )


@pytest.mark.parametrize("name", list(BODIES))
def test_an_unknown_key_is_a_422_pointing_at_it_and_writes_nothing(app, client, world, name):
    before = _every_row(app)
    problem = problem_of(_send(client, world, name, {"surprise": 1}), 422)
    assert error_pointers(problem) == ["/surprise"]
    assert "unknown field" in problem["errors"][0]["message"]
    assert _every_row(app) == before


@pytest.mark.parametrize("name", list(BODIES))
def test_a_wrong_type_is_a_422_pointing_at_the_field_and_writes_nothing(app, client, world, name):
    before = _every_row(app)
    (field,) = WRONG_TYPES[name]
    problem = problem_of(_send(client, world, name, WRONG_TYPES[name]), 422)
    assert error_pointers(problem) == [f"/{field}"]
    assert _every_row(app) == before


@pytest.mark.parametrize("name", list(BODIES))
def test_several_mistakes_are_all_reported_at_once_and_nothing_is_written(app, client, world, name):
    before = _every_row(app)
    changes, pointers = SEVERAL[name]
    problem = problem_of(_send(client, world, name, changes), 422)
    assert error_pointers(problem) == pointers
    assert all(e["message"] for e in problem["errors"])
    assert _every_row(app) == before


def test_a_missing_required_field_is_named(app, client, world):
    problem = problem_of(_send(client, world, "token", {}, drop=("password",)), 422)
    assert problem["errors"] == [{"pointer": "/password", "message": "is required"}]
    problem = problem_of(_send(client, world, "heartbeat", {}, drop=("status",)), 422)
    assert error_pointers(problem) == ["/status"]


def test_the_misspelt_visibility_of_the_issue_is_refused_and_suggests_the_field(app, client, world):
    ids, headers = world
    url = f"/api/v1/modules/{ids['pending']}"
    resp = client.put(url, json={"visibilty": "private"}, headers=headers["developer"])
    problem = problem_of(resp, 422)
    assert problem["errors"] == [
        {
            "pointer": "/visibilty",
            "message": 'unknown field "visibilty"; did you mean "visibility"?',
        }
    ]
    assert client.get(url, headers=headers["developer"]).get_json()["visibility"] == "public"


def test_messages_do_not_repeat_a_submitted_password(app, client, world):
    problem = problem_of(_send(client, world, "token", {"password": 424242}), 422)
    assert "424242" not in str(problem)


def test_a_bad_body_without_a_token_is_a_401_not_a_422(app, client, world):
    ids, _headers = world
    resp = client.post(
        f"/api/v1/installations/{ids['installation']}/heartbeat", json={"nonsense": 1}
    )
    problem_of(resp, 401)


def test_an_empty_rollback_body_still_means_the_previous_revision(app, client, world):
    ids, headers = world
    url = f"/api/v1/installations/{ids['installation']}"
    moved = client.put(
        url, json={"endpoint_url": "https://notes.example.com"}, headers=headers["acme"]
    )
    assert moved.get_json()["revision"] == 2, moved.get_data(as_text=True)
    resp = client.post(f"{url}/rollback", headers=headers["acme"])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert (resp.get_json()["revision"], resp.get_json()["endpoint_url"]) == (3, None)


def test_every_published_request_schema_refuses_unknown_keys(app):
    doc = build_openapi(app)
    components = doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            if schema is None:
                continue
            if "$ref" in schema:
                schema = components[schema["$ref"].rsplit("/", 1)[1]]
            assert schema.get("additionalProperties") is False, (method, path)
            # validate-manifest reports body mistakes in its 200 (valid: false).
            needed = ("400", "413") if path.endswith("validate-manifest") else ("400", "413", "422")
            for status in needed:
                assert status in operation["responses"], (method, path, status)
