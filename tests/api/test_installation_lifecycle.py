"""Living with installed modules through /api/v1/installations/{id} (revisions, uninstall):
changes of configuration, endpoint and version as new revisions, edits based on a stale
revision, revisions and rollback, uninstall with and without cascade and installing again,
the runtime configuration and heartbeats, secrets kept out of every answer, revision, event
and page, and another company's installation answering exactly like a missing one.

Every refused request is checked to leave nothing half-done: the installations' rows, their
revisions, the outbox events and the health history stay exactly as they were
(tests.helpers.lifecycle_state). Installing itself is tests/api/test_installations.py."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from portal.api.openapi import build_openapi
from portal.extensions import db
from portal.models import Event, HealthChange, Installation, InstallationRevision
from tests.helpers import (
    approved_release,
    approved_shelf,
    bearer,
    detached_rows,
    embedded_sqlite_app,
    error_pointers,
    lifecycle_state,
    login,
    problem_of,
    race_requests,
    role_headers,
)

URL = "/api/v1/installations/"

# Secret values distinctive enough to be searched for in any text.
API_KEY = "sk-live-LIFECYCLE-0001"
NEW_API_KEY = "sk-live-LIFECYCLE-0002"
DB_PASSWORD = "pw-LIFECYCLE-hunter2"
SECRETS = (API_KEY, NEW_API_KEY, DB_PASSWORD)

PURCHASING_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["currency", "api_key"],
    "properties": {
        "currency": {"type": "string", "enum": ["EUR", "USD"]},
        "api_key": {"type": "string", "writeOnly": True, "minLength": 8},
        "db_password": {"type": "string", "format": "password"},
        "retries": {"type": "integer", "minimum": 0, "default": 3},
    },
}
PURCHASING_CONFIG = {"currency": "EUR", "api_key": API_KEY, "db_password": DB_PASSWORD}
MASKED_PURCHASING = {
    "currency": "EUR",
    "api_key": "********",
    "db_password": "********",
    "retries": 3,
}
# inventory's schema changes between releases: 1.0.0 knows only `warehouse`, 1.4.0 adds
# `bins`, 2.0.0 requires `region`.
INVENTORY_1_0 = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"warehouse": {"type": "string", "default": "main"}},
}
INVENTORY_1_4 = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "warehouse": {"type": "string", "default": "main"},
        "bins": {"type": "integer", "minimum": 1},
    },
}
INVENTORY_2_0 = {
    "type": "object",
    "required": ["region"],
    "properties": {
        "warehouse": {"type": "string", "default": "main"},
        "region": {"type": "string", "enum": ["eu", "us"]},
    },
}


def _publish_shelf(people) -> dict[str, int]:
    """inventory 1.0.0, 1.4.0, 2.0.0 (schemas above); purchasing 1.2.0 (needs inventory
    ^1.0.0, has secrets); invoicing 1.0.0 (needs purchasing ^1.0.0); reporting 1.0.0 (needs
    inventory >=1.4.0); notes 1.0.0 (nothing). Needs an app context."""
    inventory = {"1.0.0": INVENTORY_1_0, "1.4.0": INVENTORY_1_4, "2.0.0": INVENTORY_2_0}
    ids = approved_shelf(inventory, PURCHASING_SCHEMA)
    ids["invoicing"] = approved_release("invoicing", "1.0.0", deps={"purchasing": "^1.0.0"}).id
    ids["reporting"] = approved_release("reporting", "1.0.0", deps={"inventory": ">=1.4.0"}).id
    return ids


@pytest.fixture
def shelf(app, people):
    with app.app_context():
        ids = _publish_shelf(people)
        db.session.remove()
    return ids


@pytest.fixture
def auth(app, people):
    return role_headers(app, people)


def _install(client, headers, **body) -> dict:
    resp = client.post(URL, json=body, headers=headers)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


def _purchasing(client, auth) -> dict:
    """acme installs purchasing (and inventory 1.4.0 with it); returns purchasing."""
    return _install(
        client,
        auth["acme"],
        module="purchasing",
        config=PURCHASING_CONFIG,
        install_dependencies=True,
    )


def _ids(client, auth) -> dict[str, int]:
    listed = client.get(f"{URL}?status=all", headers=auth["acme"]).get_json()["items"]
    return {i["module"]: i["id"] for i in listed}


def _put(client, headers, inst_id, body, **kw):
    return client.put(f"{URL}{inst_id}", json=body, headers={**headers, **kw.pop("extra", {})})


def _row(app, inst_id) -> Installation:
    (inst,) = detached_rows(app, sa.select(Installation).where(Installation.id == inst_id))
    return inst


def _revisions(app, inst_id) -> list[InstallationRevision]:
    return detached_rows(
        app,
        sa.select(InstallationRevision)
        .where(InstallationRevision.installation_id == inst_id)
        .order_by(InstallationRevision.revision),
    )


def _events(app, type_=None) -> list[Event]:
    query = sa.select(Event).order_by(Event.id)
    if type_:
        query = query.where(Event.type == type_)
    return detached_rows(app, query)


# --- Changes: configuration and endpoint ----------------------------------------------------


def test_a_configuration_change_is_a_new_revision_and_an_updated_event(app, client, shelf, auth):
    inst = _purchasing(client, auth)
    body = {"config": {"currency": "USD", "api_key": "********", "db_password": "********"}}
    resp = _put(client, auth["acme"], inst["id"], body)
    assert resp.status_code == 200, resp.get_json()
    changed = resp.get_json()
    assert changed["revision"] == 2 and changed["id"] == inst["id"]
    assert changed["config"] == {**MASKED_PURCHASING, "currency": "USD"}
    assert changed["version"] == "1.2.0" and changed["company"] == "acme"
    # "********" kept the stored secrets.
    row = _row(app, inst["id"])
    assert row.config == {**PURCHASING_CONFIG, "currency": "USD", "retries": 3}
    assert row.revision == 2
    (event,) = _events(app, "installation.updated")
    assert event.installation_id == inst["id"] and event.actor == "admin@acme.test"
    assert event.data == {"changed": ["config"], "revision": 2}
    assert [(r.revision, r.reason) for r in _revisions(app, inst["id"])] == [
        (1, "install"),
        (2, "config"),
    ]
    # A new secret value replaces the stored one; leaving db_password out drops it.
    body = {"config": {"currency": "USD", "api_key": NEW_API_KEY}}
    resp = _put(client, auth["acme"], inst["id"], body)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["config"] == {"currency": "USD", "api_key": "********", "retries": 3}
    assert _row(app, inst["id"]).config == {"currency": "USD", "api_key": NEW_API_KEY, "retries": 3}
    # A platform admin changes it too.
    resp = _put(
        client, auth["admin"], inst["id"], {"config": {"currency": "EUR", "api_key": "********"}}
    )
    assert resp.status_code == 200 and resp.get_json()["revision"] == 4
    assert _row(app, inst["id"]).config["api_key"] == NEW_API_KEY
    assert _events(app, "installation.updated")[-1].actor == "admin@example.com"


def test_a_masked_secret_with_nothing_stored_is_not_kept_as_the_mask(app, client, shelf, auth):
    inst = _purchasing(client, auth)
    # db_password was stored; drop it, then send the mask for it: it stays absent.
    _put(client, auth["acme"], inst["id"], {"config": {"currency": "EUR", "api_key": "********"}})
    body = {"config": {"currency": "EUR", "api_key": "********", "db_password": "********"}}
    resp = _put(client, auth["acme"], inst["id"], body)
    assert resp.status_code == 200
    assert "db_password" not in _row(app, inst["id"]).config
    assert resp.get_json()["config"] == {"currency": "EUR", "api_key": "********", "retries": 3}


def test_endpoint_changes_name_the_endpoint_and_several_fields_are_named_together(
    app, client, shelf, auth
):
    inst = _purchasing(client, auth)
    url = "http://purchasing.acme.internal:9000"
    resp = _put(client, auth["acme"], inst["id"], {"endpoint_url": url})
    assert resp.status_code == 200 and resp.get_json()["endpoint_url"] == url
    resp = _put(
        client,
        auth["acme"],
        inst["id"],
        {"endpoint_url": None, "config": {**PURCHASING_CONFIG, "currency": "USD"}},
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["endpoint_url"] is None and resp.get_json()["revision"] == 3
    assert [e.data["changed"] for e in _events(app, "installation.updated")] == [
        ["endpoint_url"],
        ["config", "endpoint_url"],
    ]
    revisions = _revisions(app, inst["id"])
    assert [(r.revision, r.reason, r.endpoint_url) for r in revisions] == [
        (1, "install", None),
        (2, "endpoint", url),
        (3, "config", None),
    ]


def test_a_change_that_changes_nothing_adds_no_revision(app, client, shelf, auth):
    inst = _purchasing(client, auth)
    before = lifecycle_state(app)
    body = {"config": {**PURCHASING_CONFIG, "api_key": "********"}, "version": "1.2.0"}
    resp = _put(client, auth["acme"], inst["id"], body)
    assert resp.status_code == 200 and resp.get_json()["revision"] == 1
    assert lifecycle_state(app) == before


@pytest.mark.parametrize(
    "body, status, pointers",
    [
        ({"config": {"currency": "GBP", "api_key": "********"}}, 422, ["/currency"]),
        ({"config": {"currency": "EUR"}}, 422, ["/api_key"]),
        ({"config": {"currency": "EUR", "api_key": "short"}}, 422, ["/api_key"]),
        ({"config": {**PURCHASING_CONFIG, "colour": "red"}}, 422, ["/colour"]),
        ({"config": {**PURCHASING_CONFIG, "retries": -1}}, 422, ["/retries"]),
        ({"config": ["EUR"]}, 422, ["/config"]),
        ({"config": "EUR"}, 422, ["/config"]),
        ({"version": 2}, 422, ["/version"]),
        ({"version": "banana"}, 422, ["/version"]),
        ({"version": "9.9.9"}, 422, ["/version"]),
        ({"endpoint_url": "ftp://x.test/"}, 422, ["/endpoint_url"]),
        ({"endpoint_url": "http:///no-host"}, 422, ["/endpoint_url"]),
        ({"endpoint_url": 5}, 422, ["/endpoint_url"]),
        ({"revision": "one", "config": {}}, 422, ["/revision"]),
        ({"revision": True, "config": {}}, 422, ["/revision"]),
        ({"revision": -1, "config": {}}, 422, ["/revision"]),
    ],
)
def test_bad_changes_are_refused_and_change_nothing(
    app, client, shelf, auth, body, status, pointers
):
    inst = _purchasing(client, auth)
    before = lifecycle_state(app)
    problem = problem_of(_put(client, auth["acme"], inst["id"], body), status)
    assert sorted(set(error_pointers(problem))) == pointers
    text = json.dumps(problem)
    assert all(secret not in text for secret in SECRETS)
    assert lifecycle_state(app) == before


@pytest.mark.parametrize("data", ["not json", "[1, 2]", '"text"', ""])
def test_a_change_that_is_not_a_json_object_is_400(app, client, shelf, auth, data):
    inst = _purchasing(client, auth)
    before = lifecycle_state(app)
    resp = client.put(
        f"{URL}{inst['id']}", data=data, content_type="application/json", headers=auth["acme"]
    )
    problem_of(resp, 400)
    assert lifecycle_state(app) == before


def test_a_configuration_too_large_or_too_deep_is_refused(app, client, shelf, auth):
    notes = _install(client, auth["acme"], module="notes")
    before = lifecycle_state(app)
    resp = _put(client, auth["acme"], notes["id"], {"config": {"note": "x" * (1024 * 1024)}})
    assert resp.status_code in (413, 422)
    problem_of(resp, resp.status_code)
    deep = '{"config": ' + '{"a": ' * 5000 + "1" + "}" * 5001
    resp = client.put(
        f"{URL}{notes['id']}", data=deep, content_type="application/json", headers=auth["acme"]
    )
    assert resp.status_code in (400, 413, 422)
    assert lifecycle_state(app) == before


@pytest.mark.parametrize("who", ["acme", "admin"])
@pytest.mark.parametrize("company", ["globex", "acme", None])
def test_a_company_field_cannot_move_an_installation(app, client, shelf, auth, who, company):
    inst = _purchasing(client, auth)
    before = lifecycle_state(app)
    body = {"company": company, "config": {**PURCHASING_CONFIG, "currency": "USD"}}
    problem = problem_of(_put(client, auth[who], inst["id"], body), 422)
    assert error_pointers(problem) == ["/company"]
    assert lifecycle_state(app) == before
    assert client.get(f"{URL}{inst['id']}", headers=auth["acme"]).get_json()["company"] == "acme"
    assert client.get(f"{URL}{inst['id']}", headers=auth["globex"]).status_code == 404


# --- Changes: version -------------------------------------------------------------------------


def test_upgrade_and_downgrade_are_revisions_with_from_and_to_versions(app, client, shelf, auth):
    inv = _install(client, auth["acme"], module="inventory", version="^1.0", config={"bins": 4})
    assert (inv["version"], inv["config"]) == ("1.4.0", {"warehouse": "main", "bins": 4})
    # Down to 1.0.0 with a configuration 1.0.0 accepts.
    resp = _put(
        client, auth["acme"], inv["id"], {"version": "1.0.0", "config": {"warehouse": "north"}}
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["version"], body["module_id"], body["revision"]) == (
        "1.0.0",
        shelf["inventory-1.0.0"],
        2,
    )
    assert body["config"] == {"warehouse": "north"}
    # Up to 2.0.0, which requires a region.
    resp = _put(client, auth["acme"], inv["id"], {"version": "2.0.0", "config": {"region": "eu"}})
    assert resp.status_code == 200, resp.get_json()
    assert (resp.get_json()["version"], resp.get_json()["revision"]) == ("2.0.0", 3)
    assert resp.get_json()["config"] == {"region": "eu", "warehouse": "main"}
    updated = _events(app, "installation.updated")
    assert [e.data for e in updated] == [
        {
            "changed": ["config", "version"],
            "from_version": "1.4.0",
            "to_version": "1.0.0",
            "revision": 2,
        },
        {
            "changed": ["config", "version"],
            "from_version": "1.0.0",
            "to_version": "2.0.0",
            "revision": 3,
        },
    ]
    assert [(e.version, e.module_id) for e in updated] == [
        ("1.0.0", shelf["inventory-1.0.0"]),
        ("2.0.0", shelf["inventory-2.0.0"]),
    ]
    assert [(r.revision, r.reason, r.version) for r in _revisions(app, inv["id"])] == [
        (1, "install", "1.4.0"),
        (2, "downgrade", "1.0.0"),
        (3, "upgrade", "2.0.0"),
    ]
    # Only the version: the configuration kept validates against the new release.
    resp = _put(client, auth["acme"], inv["id"], {"version": "2.0.0", "config": {"region": "us"}})
    assert resp.get_json()["revision"] == 4
    assert _events(app, "installation.updated")[-1].data == {"changed": ["config"], "revision": 4}


def test_an_upgrade_that_would_break_a_dependent_is_409_naming_it(app, client, shelf, auth):
    _purchasing(client, auth)  # needs inventory ^1.0.0
    inv = _ids(client, auth)["inventory"]
    before = lifecycle_state(app)
    body = {"version": "2.0.0", "config": {"region": "eu"}}
    problem = problem_of(_put(client, auth["acme"], inv, body), 409)
    assert "purchasing 1.2.0 needs as ^1.0.0" in problem["detail"]
    assert error_pointers(problem) == ["/version"]
    assert lifecycle_state(app) == before


def test_a_downgrade_that_would_break_a_dependent_is_409_naming_it(app, client, shelf, auth):
    inv = _install(client, auth["acme"], module="inventory", version="^1.0")
    _install(client, auth["acme"], module="reporting")  # needs inventory >=1.4.0
    before = lifecycle_state(app)
    problem = problem_of(_put(client, auth["acme"], inv["id"], {"version": "1.0.0"}), 409)
    assert "reporting 1.0.0 needs as >=1.4.0" in problem["detail"]
    assert lifecycle_state(app) == before


def test_a_downgrade_whose_configuration_no_longer_validates_is_422(app, client, shelf, auth):
    inv = _install(client, auth["acme"], module="inventory", version="^1.0", config={"bins": 4})
    before = lifecycle_state(app)
    problem = problem_of(_put(client, auth["acme"], inv["id"], {"version": "1.0.0"}), 422)
    assert error_pointers(problem) == ["/bins"]
    assert "inventory 1.0.0" in problem["detail"]
    # Nor with a new configuration the older schema refuses.
    body = {"version": "1.0.0", "config": {"warehouse": 7}}
    assert error_pointers(problem_of(_put(client, auth["acme"], inv["id"], body), 422)) == [
        "/warehouse"
    ]
    # An upgrade to a release requiring a field the configuration lacks.
    problem = problem_of(_put(client, auth["acme"], inv["id"], {"version": "2.0.0"}), 422)
    assert error_pointers(problem) == ["/region"]
    assert lifecycle_state(app) == before


def test_a_version_needing_a_module_the_company_lacks_is_422(app, client, shelf, auth, people):
    with app.app_context():
        approved_release("ledger", "1.0.0")
        approved_release("notes", "2.0.0", deps={"ledger": "^1.0.0"})
        db.session.remove()
    notes = _install(client, auth["acme"], module="notes", version="=1.0.0")
    before = lifecycle_state(app)
    problem = problem_of(_put(client, auth["acme"], notes["id"], {"version": "2.0.0"}), 422)
    assert "ledger" in problem["detail"]
    assert lifecycle_state(app) == before


# --- Edits based on the same revision ---------------------------------------------------------


@pytest.mark.parametrize("how", ["if-match", "weak-if-match", "body"])
def test_a_second_edit_based_on_the_same_revision_is_409(app, client, shelf, auth, how):
    inst = _purchasing(client, auth)

    def based_on(revision: int, body: dict):
        if how == "body":
            return _put(client, auth["acme"], inst["id"], {**body, "revision": revision})
        tag = f'W/"{revision}"' if how == "weak-if-match" else f'"{revision}"'
        return _put(client, auth["acme"], inst["id"], body, extra={"If-Match": tag})

    first = based_on(1, {"config": {**PURCHASING_CONFIG, "currency": "USD"}})
    assert first.status_code == 200, first.get_json()
    before = lifecycle_state(app)
    problem = problem_of(based_on(1, {"endpoint_url": "http://purchasing.acme.internal/"}), 409)
    assert "revision 2" in problem["detail"]
    assert lifecycle_state(app) == before
    assert based_on(2, {"endpoint_url": "http://purchasing.acme.internal/"}).status_code == 200
    row = _row(app, inst["id"])
    assert (row.revision, row.config["currency"]) == (3, "USD")


RACERS = 2


def race_puts(app, headers: list[dict], inst_id: int, bodies: list[dict], revision: int):
    """PUT one body per header set, all based on `revision` (If-Match) and all at once
    (tests.helpers.race_requests). Returns (status, body) per request."""
    return race_requests(
        app,
        [
            lambda client, b=b, h=h: client.put(
                f"{URL}{inst_id}", json=b, headers={**h, "If-Match": f'"{revision}"'}
            )
            for b, h in zip(bodies, headers, strict=True)
        ],
    )


def assert_racing_edits_one_wins(app, people, inst_id: int, rounds: int = 3) -> None:
    """Each round, two edits (an admin of acme and the platform admin) based on the current
    revision race: exactly one 200 and one 409, one revision and one event per round."""
    headers = [bearer(app, people.acme_admin.email), bearer(app, people.admin.email)]
    for n in range(rounds):
        base = 1 + n
        bodies = [
            {"config": {"warehouse": f"north-{n}"}, "endpoint_url": None},
            {
                "config": {"warehouse": f"south-{n}"},
                "endpoint_url": f"http://inv{n}.acme.internal/",
            },
        ]
        results = race_puts(app, headers, inst_id, bodies, base)
        assert sorted(status for status, _ in results) == [200, 409], results
        (winner,) = [i for i, (status, _) in enumerate(results) if status == 200]
        assert results[winner][1]["revision"] == base + 1
        with app.app_context():
            inst = db.session.get(Installation, inst_id)
            assert inst.revision == base + 1
            assert inst.config == {"warehouse": bodies[winner]["config"]["warehouse"]}
            assert inst.endpoint_url == bodies[winner]["endpoint_url"]
            revisions = db.session.execute(
                sa.select(InstallationRevision.revision).where(
                    InstallationRevision.installation_id == inst_id
                )
            ).scalars()
            assert sorted(revisions) == list(range(1, base + 2))
            updated = db.session.execute(
                sa.select(Event.data).where(Event.type == "installation.updated").order_by(Event.id)
            ).scalars()
            assert [d["revision"] for d in updated] == list(range(2, base + 2))
            db.session.remove()


@pytest.mark.truncate
def test_racing_edits_on_the_runs_backend(app, client, shelf, auth, people):
    inv = _install(client, auth["acme"], module="inventory", version="=1.0.0")
    assert_racing_edits_one_wins(app, people, inv["id"])


@pytest.fixture
def sqlite_app(tmp_path):
    """An embedded SQLite app with the shelf, whatever backend the rest of the run uses."""
    with embedded_sqlite_app(tmp_path, _publish_shelf) as app_and_people:
        yield app_and_people


def test_racing_edits_on_embedded_sqlite(sqlite_app):
    app, people = sqlite_app
    inv = _install(
        app.test_client(),
        bearer(app, people.acme_admin.email),
        module="inventory",
        version="=1.0.0",
    )
    assert_racing_edits_one_wins(app, people, inv["id"])


# --- Revisions and rollback -------------------------------------------------------------------


def _history(client, auth) -> dict:
    """purchasing: 1 install, 2 config (USD, new key), 3 endpoint; inventory 1.4.0 alongside."""
    inst = _purchasing(client, auth)
    body = {"config": {"currency": "USD", "api_key": NEW_API_KEY}}
    assert _put(client, auth["acme"], inst["id"], body).status_code == 200
    body = {"endpoint_url": "http://purchasing.acme.internal:9000"}
    assert _put(client, auth["admin"], inst["id"], body).status_code == 200
    return inst


def test_revisions_newest_first_masked_with_actor_and_reason(app, client, shelf, auth):
    inst = _history(client, auth)
    resp = client.get(f"{URL}{inst['id']}/revisions", headers=auth["acme"])
    assert resp.status_code == 200
    revisions = resp.get_json()
    keys = {"revision", "version", "config", "endpoint_url", "created_at", "actor", "reason"}
    assert all(set(r) == keys | {"changes"} for r in revisions)
    assert [(r["revision"], r["reason"], r["actor"], r["version"]) for r in revisions] == [
        (3, "endpoint", "admin@example.com", "1.2.0"),
        (2, "config", "admin@acme.test", "1.2.0"),
        (1, "install", "admin@acme.test", "1.2.0"),
    ]
    assert [r["config"] for r in revisions] == [
        {"currency": "USD", "api_key": "********", "retries": 3},
        {"currency": "USD", "api_key": "********", "retries": 3},
        MASKED_PURCHASING,
    ]
    assert [r["endpoint_url"] for r in revisions] == [
        "http://purchasing.acme.internal:9000",
        None,
        None,
    ]
    assert all(r["created_at"].endswith(("Z", "+00:00")) for r in revisions)
    text = resp.get_data(as_text=True)
    assert all(secret not in text for secret in SECRETS)
    # A platform admin reads them too.
    assert client.get(f"{URL}{inst['id']}/revisions", headers=auth["admin"]).get_json() == revisions


def test_revisions_carry_their_changes_with_secrets_shown_changed_never_valued(
    app, client, shelf, auth
):
    inst = _history(client, auth)
    resp = client.get(f"{URL}{inst['id']}/revisions", headers=auth["acme"])
    changes = {r["revision"]: r["changes"] for r in resp.get_json()}

    def config(pointer, kind, before=None, after=None, secret=False):
        return {"field": "config", "pointer": pointer, "kind": kind, "before": before,
                "after": after, "secret": secret}  # fmt: skip

    assert changes[3] == [
        {
            "field": "endpoint_url",
            "kind": "added",
            "before": None,
            "after": "http://purchasing.acme.internal:9000",
            "secret": False,
        }
    ]
    # The new API key is a change of a secret: said so, with neither value.
    assert changes[2] == [
        config("/currency", "changed", "EUR", "USD"),
        config("/api_key", "changed", secret=True),
        config("/db_password", "removed", secret=True),
    ]
    assert changes[1] == [
        config("/currency", "added", after="EUR"),
        config("/retries", "added", after="3"),
        config("/api_key", "added", secret=True),
        config("/db_password", "added", secret=True),
    ]
    assert all(secret not in resp.get_data(as_text=True) for secret in SECRETS)


def test_a_change_with_configuration_and_endpoint_errors_names_them_all_in_one_422(
    app, client, shelf, auth
):
    inst = _purchasing(client, auth)
    before = lifecycle_state(app)
    body = {
        "config": {"currency": "GBP", "api_key": "********", "retries": -1},
        "endpoint_url": "ftp://purchasing.acme.internal",
    }
    problem = problem_of(_put(client, auth["acme"], inst["id"], body), 422)
    assert sorted(error_pointers(problem)) == ["/currency", "/endpoint_url", "/retries"]
    # With a version too: the version's own error beside the others.
    body["version"] = "9.9.9"
    problem = problem_of(_put(client, auth["acme"], inst["id"], body), 422)
    assert "/version" in error_pointers(problem) and "/endpoint_url" in error_pointers(problem)
    assert lifecycle_state(app) == before


def test_rollback_restores_the_previous_revision_by_default_then_revision_one(
    app, client, shelf, auth
):
    inst = _history(client, auth)
    resp = client.post(f"{URL}{inst['id']}/rollback", headers=auth["acme"])
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["revision"], body["endpoint_url"]) == (4, None)  # revision 2's endpoint
    assert body["config"] == {"currency": "USD", "api_key": "********", "retries": 3}
    # To revision 1: its configuration and secrets come back.
    resp = client.post(f"{URL}{inst['id']}/rollback", json={"revision": 1}, headers=auth["acme"])
    assert resp.status_code == 200, resp.get_json()
    assert (resp.get_json()["revision"], resp.get_json()["config"]) == (5, MASKED_PURCHASING)
    row = _row(app, inst["id"])
    assert row.config == {**PURCHASING_CONFIG, "retries": 3}
    rolled = _events(app, "installation.rolled_back")
    assert [e.data for e in rolled] == [
        {"to_revision": 2, "from_version": "1.2.0", "to_version": "1.2.0", "revision": 4},
        {"to_revision": 1, "from_version": "1.2.0", "to_version": "1.2.0", "revision": 5},
    ]
    assert all(e.installation_id == inst["id"] and e.company == "acme" for e in rolled)
    assert [(r.revision, r.reason) for r in _revisions(app, inst["id"])][3:] == [
        (4, "rollback"),
        (5, "rollback"),
    ]
    listed = client.get(f"{URL}{inst['id']}/revisions", headers=auth["acme"]).get_json()
    assert [(r["revision"], r["reason"]) for r in listed[:2]] == [(5, "rollback"), (4, "rollback")]
    # The runtime gets the restored secret.
    config = client.get(f"{URL}{inst['id']}/config", headers=auth["acme"]).get_json()
    assert config["api_key"] == API_KEY and config["db_password"] == DB_PASSWORD


def test_rollback_restores_the_release_too(app, client, shelf, auth):
    inv = _install(client, auth["acme"], module="inventory", version="^1.0", config={"bins": 2})
    body = {"version": "2.0.0", "config": {"region": "eu"}}
    assert _put(client, auth["acme"], inv["id"], body).status_code == 200
    resp = client.post(f"{URL}{inv['id']}/rollback", json={"revision": 1}, headers=auth["acme"])
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["version"], body["module_id"], body["revision"]) == (
        "1.4.0",
        shelf["inventory-1.4.0"],
        3,
    )
    assert body["config"] == {"warehouse": "main", "bins": 2}
    (event,) = _events(app, "installation.rolled_back")
    assert event.data == {
        "to_revision": 1,
        "from_version": "2.0.0",
        "to_version": "1.4.0",
        "revision": 3,
    }
    assert (event.version, event.module_id) == ("1.4.0", shelf["inventory-1.4.0"])


def test_a_rollback_that_would_break_a_dependent_is_409_naming_it(app, client, shelf, auth):
    inv = _install(client, auth["acme"], module="inventory", version="=1.0.0")
    assert _put(client, auth["acme"], inv["id"], {"version": "1.4.0"}).status_code == 200
    _install(client, auth["acme"], module="reporting")  # needs inventory >=1.4.0
    before = lifecycle_state(app)
    problem = problem_of(client.post(f"{URL}{inv['id']}/rollback", headers=auth["acme"]), 409)
    assert "reporting 1.0.0 needs as >=1.4.0" in problem["detail"]
    assert lifecycle_state(app) == before


def test_a_rollback_to_a_configuration_that_no_longer_validates_is_422(app, client, shelf, auth):
    """Revision 1's configuration is made invalid for its release in the database: data an
    older registry wrote before it validated as strictly (every configuration this one stores
    is validated, and a release's schema never changes once approved)."""
    inv = _install(client, auth["acme"], module="inventory", version="^1.0", config={"bins": 2})
    assert _put(client, auth["acme"], inv["id"], {"config": {"bins": 3}}).status_code == 200
    with app.app_context():
        db.session.execute(
            sa.update(InstallationRevision)
            .where(
                InstallationRevision.installation_id == inv["id"],
                InstallationRevision.revision == 1,
            )
            .values(config={"warehouse": "main", "bins": 0, "legacy": True})
        )
        db.session.commit()
        db.session.remove()
    before = lifecycle_state(app)
    resp = client.post(f"{URL}{inv['id']}/rollback", json={"revision": 1}, headers=auth["acme"])
    problem = problem_of(resp, 422)
    assert sorted(error_pointers(problem)) == ["/bins", "/legacy"]
    assert lifecycle_state(app) == before


@pytest.mark.parametrize(
    "body, status, pointer",
    [
        ({"revision": 3}, 422, "/revision"),  # the current one
        ({"revision": 4}, 422, "/revision"),
        ({"revision": 0}, 422, "/revision"),
        ({"revision": -2}, 422, "/revision"),
        ({"revision": "1"}, 422, "/revision"),
        ({"revision": 1.5}, 422, "/revision"),
        ({"revision": True}, 422, "/revision"),
        ([1], 400, None),
        ("1", 400, None),
    ],
)
def test_bad_rollbacks_change_nothing(app, client, shelf, auth, body, status, pointer):
    inst = _history(client, auth)
    before = lifecycle_state(app)
    resp = client.post(f"{URL}{inst['id']}/rollback", json=body, headers=auth["acme"])
    problem = problem_of(resp, status)
    if pointer:
        assert error_pointers(problem) == [pointer]
    assert lifecycle_state(app) == before


@pytest.mark.parametrize("data", ["not json", "{", '{"revision": ' + "[" * 100_000])
def test_a_rollback_body_that_cannot_be_read_is_refused_not_a_crash(app, client, shelf, auth, data):
    inst = _history(client, auth)
    before = lifecycle_state(app)
    resp = client.post(
        f"{URL}{inst['id']}/rollback",
        data=data,
        content_type="application/json",
        headers=auth["acme"],
    )
    problem_of(resp, resp.status_code)
    assert resp.status_code in (400, 422)
    assert lifecycle_state(app) == before


def test_a_rollback_of_an_installation_with_one_revision_is_422(app, client, shelf, auth):
    notes = _install(client, auth["acme"], module="notes")
    before = lifecycle_state(app)
    problem_of(client.post(f"{URL}{notes['id']}/rollback", headers=auth["acme"]), 422)
    assert lifecycle_state(app) == before


def _rollback(client, headers, inst_id, body=None, **kw):
    return client.post(
        f"{URL}{inst_id}/rollback", json=body, headers={**headers, **kw.pop("extra", {})}
    )


@pytest.mark.parametrize("how", ["if-match", "weak-if-match", "body"])
def test_a_rollback_based_on_a_stale_revision_is_409_and_changes_nothing(
    app, client, shelf, auth, how
):
    """A rollback sent from a page (or a script) that read revision 2, after someone else
    made revision 3: refused like a PUT based on a stale revision, nothing half-done."""
    inst = _history(client, auth)  # at revision 3

    def based_on(revision: int, body: dict):
        if how == "body":
            return _rollback(
                client, auth["acme"], inst["id"], {**body, "expected_revision": revision}
            )
        tag = f'W/"{revision}"' if how == "weak-if-match" else f'"{revision}"'
        return _rollback(client, auth["acme"], inst["id"], body, extra={"If-Match": tag})

    before = lifecycle_state(app)
    problem = problem_of(based_on(2, {"revision": 1}), 409)
    assert "revision 3, not 2" in problem["detail"]
    assert lifecycle_state(app) == before
    assert not _events(app, "installation.rolled_back")
    # Based on the current revision, it is applied.
    resp = based_on(3, {"revision": 1})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["revision"] == 4
    assert _row(app, inst["id"]).config["api_key"] == API_KEY
    # The default target (the previous revision) is guarded the same way.
    before = lifecycle_state(app)
    problem_of(based_on(3, {}), 409)
    assert lifecycle_state(app) == before
    assert based_on(4, {}).status_code == 200


def test_a_rollback_without_an_expected_revision_is_applied_whatever_the_revision(
    app, client, shelf, auth
):
    """Backwards compatible: `revision` alone is the target, never an expected revision."""
    inst = _history(client, auth)  # at revision 3
    resp = _rollback(client, auth["acme"], inst["id"], {"revision": 2})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["revision"] == 4


@pytest.mark.parametrize(
    "body, if_match",
    [
        ({"expected_revision": "three"}, None),
        ({"expected_revision": True}, None),
        ({"expected_revision": -3}, None),
        ({"expected_revision": 2.5}, None),
        ({}, '"r3"'),
        ({"expected_revision": 3}, "W/three"),
    ],
)
def test_an_invalid_expected_revision_of_a_rollback_is_422(
    app, client, shelf, auth, body, if_match
):
    inst = _history(client, auth)
    before = lifecycle_state(app)
    extra = {"If-Match": if_match} if if_match else {}
    resp = _rollback(client, auth["acme"], inst["id"], {"revision": 1, **body}, extra=extra)
    assert error_pointers(problem_of(resp, 422)) == ["/expected_revision"]
    assert lifecycle_state(app) == before


def test_the_rollback_documents_its_expected_revision_like_the_put(app):
    paths = build_openapi(app)["paths"]
    put = paths["/api/v1/installations/{installation_id}"]["put"]
    rollback = paths["/api/v1/installations/{installation_id}/rollback"]["post"]
    headers = [p for p in rollback["parameters"] if p["in"] == "header"]
    assert [p["name"] for p in headers] == ["If-Match"]
    assert headers == [p for p in put["parameters"] if p["in"] == "header"]
    schema = rollback["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["expected_revision"]["type"] == "integer"
    assert "409" in rollback["responses"]


# --- Uninstall --------------------------------------------------------------------------------


def _chain(client, auth) -> dict[str, int]:
    """acme: inventory 1.4.0 ← purchasing ← invoicing, inventory ← reporting, and notes."""
    _purchasing(client, auth)
    _install(client, auth["acme"], module="invoicing")
    _install(client, auth["acme"], module="reporting", config={})
    _install(client, auth["acme"], module="notes")
    return _ids(client, auth)


def test_uninstall_with_dependents_is_409_listing_them_and_changes_nothing(
    app, client, shelf, auth
):
    ids = _chain(client, auth)
    before = lifecycle_state(app)
    problem = problem_of(client.delete(f"{URL}{ids['inventory']}", headers=auth["acme"]), 409)
    assert problem["dependents"] == ["invoicing", "purchasing", "reporting"]
    assert error_pointers(problem) == ["/cascade"] * 3
    assert [e["message"] for e in problem["errors"]] == [
        "needed by invoicing",
        "needed by purchasing",
        "needed by reporting",
    ]
    assert all(name in problem["detail"] for name in problem["dependents"])
    problem = problem_of(client.delete(f"{URL}{ids['purchasing']}", headers=auth["admin"]), 409)
    assert problem["dependents"] == ["invoicing"]
    for falsy in ("false", "0", ""):
        resp = client.delete(f"{URL}{ids['inventory']}?cascade={falsy}", headers=auth["acme"])
        problem_of(resp, 409)
    assert lifecycle_state(app) == before


def test_cascade_uninstalls_dependents_first_and_keeps_the_records(app, client, shelf, auth):
    ids = _chain(client, auth)
    configs = {name: _row(app, i).config for name, i in ids.items()}
    resp = client.delete(f"{URL}{ids['inventory']}?cascade=true", headers=auth["acme"])
    assert resp.status_code == 204 and resp.get_data() == b""
    uninstalled = _events(app, "installation.uninstalled")
    order = [e.module for e in uninstalled]
    # Reverse dependency order: each module after everything that needs it.
    assert sorted(order) == ["inventory", "invoicing", "purchasing", "reporting"]
    assert order.index("invoicing") < order.index("purchasing") < order.index("inventory")
    assert order.index("reporting") < order.index("inventory")
    assert {e.module: e.data["cascade"] for e in uninstalled} == {
        "inventory": False,
        "invoicing": True,
        "purchasing": True,
        "reporting": True,
    }
    assert all(e.company == "acme" and e.actor == "admin@acme.test" for e in uninstalled)
    for name in ("inventory", "invoicing", "purchasing", "reporting"):
        row = _row(app, ids[name])
        assert (row.status, row.config, row.revision) == ("uninstalled", configs[name], 1)
        assert row.uninstalled_at is not None
    assert _row(app, ids["notes"]).status == "installed"
    listed = client.get(URL, headers=auth["acme"]).get_json()["items"]
    assert [i["module"] for i in listed] == ["notes"]
    read = client.get(f"{URL}{ids['purchasing']}", headers=auth["acme"]).get_json()
    assert (read["status"], read["config"]) == ("uninstalled", MASKED_PURCHASING)
    assert len(_revisions(app, ids["purchasing"])) == 1  # an uninstall is not a revision


def test_uninstall_without_dependents_and_changes_to_an_uninstalled_module_are_409(
    app, client, shelf, auth
):
    notes = _install(
        client, auth["acme"], module="notes", endpoint_url="http://notes.acme.internal/"
    )
    assert client.delete(f"{URL}{notes['id']}", headers=auth["admin"]).status_code == 204
    (event,) = _events(app, "installation.uninstalled")
    assert (event.actor, event.data) == ("admin@example.com", {"cascade": False, "revision": 1})
    before = lifecycle_state(app)
    problem_of(client.delete(f"{URL}{notes['id']}", headers=auth["acme"]), 409)
    problem_of(_put(client, auth["acme"], notes["id"], {"config": {"a": 1}}), 409)
    problem_of(
        client.post(f"{URL}{notes['id']}/rollback", json={"revision": 1}, headers=auth["acme"]), 409
    )
    problem_of(client.post(f"{URL}{notes['id']}/health-check", headers=auth["acme"]), 409)
    # The runtime of an uninstalled module gets nothing.
    problem_of(client.get(f"{URL}{notes['id']}/config", headers=auth["acme"]), 404)
    resp = client.post(
        f"{URL}{notes['id']}/heartbeat", json={"status": "healthy"}, headers=auth["acme"]
    )
    problem_of(resp, 404)
    assert lifecycle_state(app) == before
    # The history stays readable.
    assert client.get(f"{URL}{notes['id']}/revisions", headers=auth["acme"]).status_code == 200


def test_installing_again_reactivates_the_record_with_its_last_configuration(
    app, client, shelf, auth
):
    inst = _history(client, auth)  # purchasing at revision 3
    ids = _ids(client, auth)
    resp = client.delete(f"{URL}{ids['inventory']}?cascade=1", headers=auth["acme"])
    assert resp.status_code == 204
    # purchasing comes back with inventory: both the same records, revisions continuing.
    again = _install(client, auth["acme"], module="purchasing", install_dependencies=True)
    assert again["id"] == inst["id"] and again["revision"] == 4
    assert again["config"] == {"currency": "USD", "api_key": "********", "retries": 3}
    assert again["endpoint_url"] == "http://purchasing.acme.internal:9000"
    (dep,) = again["installed_dependencies"]
    assert (dep["id"], dep["revision"], dep["module"]) == (ids["inventory"], 2, "inventory")
    assert _row(app, inst["id"]).config == {"currency": "USD", "api_key": NEW_API_KEY, "retries": 3}
    assert [(r.revision, r.reason) for r in _revisions(app, inst["id"])] == [
        (1, "install"),
        (2, "config"),
        (3, "endpoint"),
        (4, "reinstall"),
    ]
    # A rollback reaches back across the uninstall.
    resp = client.post(f"{URL}{inst['id']}/rollback", json={"revision": 1}, headers=auth["acme"])
    assert resp.status_code == 200 and resp.get_json()["revision"] == 5
    assert _row(app, inst["id"]).config["api_key"] == API_KEY
    # Uninstalled again and installed with a new configuration: that one is used.
    assert (
        client.delete(f"{URL}{ids['inventory']}?cascade=yes", headers=auth["acme"]).status_code
        == 204
    )
    config = {"currency": "EUR", "api_key": "sk-brand-new-key"}
    again = _install(
        client, auth["acme"], module="purchasing", config=config, install_dependencies=True
    )
    assert (again["id"], again["revision"]) == (inst["id"], 6)
    assert _row(app, inst["id"]).config == {**config, "retries": 3}
    created = [e for e in _events(app, "installation.created") if e.module == "purchasing"]
    assert [e.data["revision"] for e in created] == [1, 4, 6]


def test_installing_again_with_masked_secrets_keeps_the_stored_ones(app, client, shelf, auth):
    """As for a PUT: a secret sent back as "********" on a reinstall keeps the value the
    uninstalled record stored (one never stored is dropped), never the mask itself."""
    inst = _history(client, auth)  # purchasing at revision 3: USD, NEW_API_KEY, no password
    ids = _ids(client, auth)
    assert (
        client.delete(f"{URL}{ids['inventory']}?cascade=1", headers=auth["acme"]).status_code == 204
    )
    config = {"currency": "EUR", "api_key": "********", "db_password": "********"}
    again = _install(
        client, auth["acme"], module="purchasing", config=config, install_dependencies=True
    )
    assert (again["id"], again["revision"]) == (inst["id"], 4)
    assert again["config"] == {"currency": "EUR", "api_key": "********", "retries": 3}
    stored = {"currency": "EUR", "api_key": NEW_API_KEY, "retries": 3}
    assert _row(app, inst["id"]).config == stored
    assert _revisions(app, inst["id"])[-1].config == stored
    runtime = client.get(f"{URL}{inst['id']}/config", headers=auth["acme"]).get_json()
    assert runtime["api_key"] == NEW_API_KEY and "db_password" not in runtime
    # A new secret on a reinstall replaces the stored one.
    assert (
        client.delete(f"{URL}{ids['inventory']}?cascade=1", headers=auth["acme"]).status_code == 204
    )
    config = {"currency": "EUR", "api_key": "sk-live-LIFECYCLE-0003"}
    _install(client, auth["acme"], module="purchasing", config=config, install_dependencies=True)
    assert _row(app, inst["id"]).config["api_key"] == "sk-live-LIFECYCLE-0003"


def test_installing_again_with_a_masked_required_secret_never_stored_is_422(
    app, client, shelf, auth
):
    """The mask of a secret the record never had is dropped, so a required one is missing:
    422 pointing at it, not the mask stored as the secret."""
    inst = _purchasing(client, auth)
    ids = _ids(client, auth)
    with app.app_context():  # as if an older registry had stored it without the key
        db.session.execute(
            sa.update(Installation)
            .where(Installation.id == inst["id"])
            .values(config={"currency": "EUR"})
        )
        db.session.commit()
        db.session.remove()
    assert (
        client.delete(f"{URL}{ids['inventory']}?cascade=1", headers=auth["acme"]).status_code == 204
    )
    before = lifecycle_state(app)
    resp = client.post(
        URL,
        json={
            "module": "purchasing",
            "config": {"currency": "EUR", "api_key": "********"},
            "install_dependencies": True,
        },
        headers=auth["acme"],
    )
    assert error_pointers(problem_of(resp, 422)) == ["/api_key"]
    assert lifecycle_state(app) == before


# --- Runtime: configuration and heartbeats ----------------------------------------------------


def test_the_runtime_configuration_with_secrets_etag_and_304(app, client, shelf, auth):
    inst = _purchasing(client, auth)
    url = f"{URL}{inst['id']}/config"
    resp = client.get(url, headers=auth["acme"])
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert resp.get_json() == {**PURCHASING_CONFIG, "retries": 3}
    etag = resp.headers["ETag"]
    assert etag
    # Unchanged: 304, no body.
    resp = client.get(url, headers={**auth["acme"], "If-None-Match": etag})
    assert resp.status_code == 304 and resp.get_data() == b""
    # Any of the owning company's tokens (a developer's too): the runtime's.
    resp = client.get(url, headers={**auth["developer"], "If-None-Match": etag})
    assert resp.status_code == 304
    # After a change: a new ETag, the old one gets the new configuration.
    body = {"config": {"currency": "USD", "api_key": NEW_API_KEY}}
    assert _put(client, auth["acme"], inst["id"], body).status_code == 200
    resp = client.get(url, headers={**auth["acme"], "If-None-Match": etag})
    assert resp.status_code == 200
    assert resp.get_json() == {"currency": "USD", "api_key": NEW_API_KEY, "retries": 3}
    assert resp.headers["ETag"] != etag
    resp = client.get(url, headers={**auth["acme"], "If-None-Match": resp.headers["ETag"]})
    assert resp.status_code == 304


def test_the_runtime_configuration_is_not_for_platform_admins_or_other_companies(
    app, client, shelf, auth
):
    inst = _purchasing(client, auth)
    resp = client.get(f"{URL}{inst['id']}/config", headers=auth["admin"])
    problem = problem_of(resp, 403)
    assert API_KEY not in resp.get_data(as_text=True)
    for who in ("globex", "globex_dev"):
        other = client.get(f"{URL}{inst['id']}/config", headers=auth[who])
        missing = client.get(f"{URL}{inst['id'] + 1000}/config", headers=auth[who])
        problem_of(other, 404)
        assert other.get_data() == missing.get_data()
        assert API_KEY not in other.get_data(as_text=True)
    assert problem["status"] == 403
    problem_of(client.get(f"{URL}{inst['id']}/config"), 401)


def test_heartbeats_store_the_status_and_a_change_emits_one_event(app, client, shelf, auth):
    notes = _install(client, auth["acme"], module="notes")
    url = f"{URL}{notes['id']}/heartbeat"

    def beat(status, message=None, who="acme"):
        body = {"status": status} if message is None else {"status": status, "message": message}
        resp = client.post(url, json=body, headers=auth[who])
        assert resp.status_code == 204, resp.get_data(as_text=True)
        assert resp.get_data() == b""

    beat("healthy", "all good")
    row = _row(app, notes["id"])
    assert (row.health_status, row.health_message) == ("healthy", "all good")
    assert row.last_heartbeat_at is not None and row.health_checked_at is not None
    read = client.get(f"{URL}{notes['id']}", headers=auth["acme"]).get_json()
    assert read["health"]["status"] == "healthy" and read["health"]["message"] == "all good"
    beat("healthy", "still good", who="developer")
    beat("healthy")
    beat("degraded", "slow disk")
    beat("degraded")
    changed = _events(app, "installation.health_changed")
    assert [(e.data["from"], e.data["to"], e.data["source"]) for e in changed] == [
        ("unknown", "healthy", "heartbeat"),
        ("healthy", "degraded", "heartbeat"),
    ]
    assert all(e.installation_id == notes["id"] and e.company == "acme" for e in changed)
    with app.app_context():
        history = db.session.execute(
            sa.select(HealthChange.from_status, HealthChange.to_status).order_by(HealthChange.id)
        ).all()
        db.session.remove()
    assert history == [("unknown", "healthy"), ("healthy", "degraded")]
    assert _row(app, notes["id"]).revision == 1  # health is not a revision


@pytest.mark.parametrize(
    "body, status, pointer",
    [
        ({"status": "fine"}, 422, "/status"),
        ({"status": "HEALTHY"}, 422, "/status"),
        ({"status": "unknown"}, 422, "/status"),
        ({}, 422, "/status"),
        ({"status": 1}, 422, "/status"),
        ({"status": "healthy", "message": 5}, 422, "/message"),
        ([1], 400, None),
    ],
)
def test_bad_heartbeats_change_nothing(app, client, shelf, auth, body, status, pointer):
    notes = _install(client, auth["acme"], module="notes")
    before = lifecycle_state(app)
    resp = client.post(f"{URL}{notes['id']}/heartbeat", json=body, headers=auth["acme"])
    problem = problem_of(resp, status)
    if pointer:
        assert error_pointers(problem) == [pointer]
    assert lifecycle_state(app) == before
    assert _row(app, notes["id"]).last_heartbeat_at is None


def test_heartbeats_are_not_for_platform_admins(app, client, shelf, auth):
    notes = _install(client, auth["acme"], module="notes")
    before = lifecycle_state(app)
    url = f"{URL}{notes['id']}/heartbeat"
    problem_of(client.post(url, json={"status": "healthy"}, headers=auth["admin"]), 403)
    problem_of(client.post(url, json={"status": "healthy"}), 401)
    assert lifecycle_state(app) == before


# --- Secrets ------------------------------------------------------------------------------------


def test_secrets_never_appear_in_answers_revisions_events_or_pages(app, client, shelf, auth):
    texts: list[str] = []

    def keep(resp):
        texts.append(resp.get_data(as_text=True))
        return resp

    inst = keep(
        client.post(
            URL,
            json={
                "module": "purchasing",
                "config": PURCHASING_CONFIG,
                "install_dependencies": True,
            },
            headers=auth["acme"],
        )
    ).get_json()
    inst_url = f"{URL}{inst['id']}"
    keep(
        _put(
            client,
            auth["acme"],
            inst["id"],
            {"config": {"currency": "USD", "api_key": NEW_API_KEY, "db_password": "********"}},
        )
    )
    keep(
        _put(client, auth["acme"], inst["id"], {"config": {"currency": "USD", "api_key": "short"}})
    )  # 422
    keep(
        _put(client, auth["acme"], inst["id"], {"config": {"currency": "GBP", "api_key": API_KEY}})
    )  # 422
    keep(client.post(f"{inst_url}/rollback", headers=auth["acme"]))
    keep(client.post(f"{inst_url}/rollback", json={"revision": 2}, headers=auth["acme"]))
    for headers in (auth["acme"], auth["admin"]):
        keep(client.get(inst_url, headers=headers))
        keep(client.get(f"{inst_url}/revisions", headers=headers))
        keep(client.get(f"{URL}?status=all", headers=headers))
    keep(client.get(f"{inst_url}/config", headers=auth["admin"]))  # 403
    keep(client.get("/api/v1/events", headers=auth["admin"]))
    keep(client.get("/api/v1/events?company=acme", headers=auth["acme"]))
    ids = _ids(client, auth)
    keep(client.delete(f"{URL}{ids['inventory']}", headers=auth["acme"]))  # 409
    keep(client.delete(f"{URL}{ids['inventory']}?cascade=true", headers=auth["acme"]))
    keep(
        client.post(
            URL, json={"module": "purchasing", "install_dependencies": True}, headers=auth["acme"]
        )
    )
    keep(client.get(inst_url, headers=auth["acme"]))
    # Pages: the company's installations, as its admin and as a platform admin.
    for email in ("admin@acme.test", "admin@example.com"):
        browser = app.test_client()
        login(browser, email)
        page = browser.get("/company/acme/installations")
        assert page.status_code == 200 and "purchasing" in page.get_data(as_text=True)
        texts.append(page.get_data(as_text=True))
        texts.append(browser.get("/activity").get_data(as_text=True))

    for text in texts:
        assert all(secret not in text for secret in SECRETS), text[:300]
    events = _events(app)
    assert {e.type for e in events} >= {
        "installation.created",
        "installation.updated",
        "installation.rolled_back",
        "installation.uninstalled",
    }
    for event in events:
        text = json.dumps(event.data)
        assert all(secret not in text for secret in SECRETS), (event.type, text)
    # Stored, and handed to the owning company's runtime only.
    assert _row(app, inst["id"]).config["api_key"] == NEW_API_KEY
    runtime = client.get(f"{inst_url}/config", headers=auth["acme"]).get_json()
    assert (runtime["api_key"], runtime["db_password"]) == (NEW_API_KEY, DB_PASSWORD)


# --- Another company's installation: exactly like a missing one -------------------------------

ENDPOINTS = [
    ("get", "", None),
    ("put", "", {"config": {"currency": "USD", "api_key": "********"}}),
    ("put", "", {"version": "1.2.0"}),
    ("put", "", {"endpoint_url": "http://x.globex.internal/"}),
    ("delete", "", None),
    ("delete", "?cascade=true", None),
    ("get", "/revisions", None),
    ("post", "/rollback", None),
    ("post", "/rollback", {"revision": 1}),
    ("post", "/health-check", None),
    ("get", "/config", None),
    ("post", "/heartbeat", {"status": "unhealthy"}),
]


@pytest.mark.parametrize("method, suffix, body", ENDPOINTS)
def test_another_companys_installation_answers_404_exactly_like_a_missing_one(
    app, client, shelf, auth, method, suffix, body
):
    inst = _history(client, auth)  # purchasing at revision 3, with an endpoint
    missing_id = inst["id"] + 1000
    before = lifecycle_state(app)
    callers = ["globex", "globex_dev"]
    if suffix not in ("/config", "/heartbeat"):
        callers.append("developer")  # acme's developers do not manage installations
    for who in callers:
        call = getattr(client, method)
        kwargs = {"headers": auth[who]}
        if body is not None:
            kwargs["json"] = body
        other = call(f"{URL}{inst['id']}{suffix}", **kwargs)
        missing = call(f"{URL}{missing_id}{suffix}", **kwargs)
        problem_of(other, 404)
        assert other.get_data() == missing.get_data(), who
        assert dict(other.headers) == dict(missing.headers), who
    assert lifecycle_state(app) == before
