"""Installing modules through /api/v1/installations (install plan, installation): access,
configuration checked against the module's schema, plans, all-or-nothing installs, list and
read shapes, and two installs racing for the same module (on the run's backend and on an
embedded SQLite app).

Every failing request is checked to leave nothing behind: no installation, revision or event
row is added (tests.helpers.installation_state)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Event, Installation, InstallationRevision
from portal.services.accounts import users
from portal.services.review.decisions import change_status
from tests.helpers import (
    approved_release,
    approved_shelf,
    bearer,
    detached_rows,
    embedded_sqlite_app,
    error_pointers,
    installation_state,
    problem_of,
    race_requests,
    role_headers,
)

URL = "/api/v1/installations/"
PLAN_URL = "/api/v1/installations/plan"

PURCHASING_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["currency", "api_key"],
    "properties": {
        "currency": {"type": "string", "enum": ["EUR", "USD"]},
        "api_key": {"type": "string", "writeOnly": True, "minLength": 8},
        "db_password": {"type": "string", "format": "password"},
        "contact": {"type": "string", "format": "email"},
        "callback": {"type": "string", "format": "uri"},
        "starts_at": {"type": "string", "format": "date-time"},
        "retries": {"type": "integer", "minimum": 0, "default": 3},
        "limits": {
            "type": "object",
            "properties": {
                "daily": {"type": "integer", "default": 100},
                "burst": {"type": "integer", "default": 10},
            },
        },
        "smtp": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "host": {"type": "string"},
                "password": {"type": "string", "writeOnly": True},
                "port": {"type": "integer", "default": 587},
            },
        },
    },
}
INVENTORY_SCHEMA = {
    "type": "object",
    "properties": {"warehouse": {"type": "string", "default": "main"}},
}
GOOD_CONFIG = {
    "currency": "EUR",
    "api_key": "sk-live-0123456789",
    "db_password": "hunter2-hunter2",
    "smtp": {"host": "mail.acme.test", "password": "smtp-secret"},
}
INSTALLATION_KEYS = {
    "id",
    "company",
    "module_id",
    "module",
    "version",
    "status",
    "config",
    "endpoint_url",
    "revision",
    "upgrade_available",
    "health",
    "created_at",
    "updated_at",
}


@pytest.fixture
def shelf(app, people):
    """acme publishes inventory 1.0.0, 1.2.5, 1.4.0, 2.0.0; purchasing 1.2.0 (needs inventory
    ^1.0.0, has secrets, formats and defaults); notes 1.0.0 (no dependencies, no schema);
    secret-tool 1.0.0 (private). globex publishes globex-vault 1.0.0 (private)."""
    with app.app_context():
        versions = ("1.0.0", "1.2.5", "1.4.0", "2.0.0")
        ids = approved_shelf(dict.fromkeys(versions, INVENTORY_SCHEMA), PURCHASING_SCHEMA)
        ids["secret-tool"] = approved_release("secret-tool", "1.0.0", visibility="private").id
        ids["globex-vault"] = approved_release(
            "globex-vault", "1.0.0", actor_email=people.globex_dev.email, visibility="private"
        ).id
        db.session.remove()
    return ids


@pytest.fixture
def auth(app, people):
    return role_headers(app, people)


def _install(client, headers, **body):
    return client.post(URL, json=body, headers=headers)


def _purchasing(**extra):
    return {"module": "purchasing", "config": GOOD_CONFIG, "install_dependencies": True, **extra}


def _rows(app, model, **where):
    return detached_rows(app, sa.select(model).filter_by(**where).order_by(model.id))


def _events(app, type_="installation.created"):
    return _rows(app, Event, type=type_)


# --- Access -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "who, body, status, pointer",
    [
        # A company admin of globex naming acme: 404, as if acme did not exist (api.md).
        ("globex", {"module": "notes", "company": "acme"}, 404, None),
        ("globex", {"module": "notes", "company": "no-such-company"}, 404, None),
        # Another company's private module, by name or by id: 404.
        ("globex", {"module": "secret-tool"}, 404, None),
        ("globex", {"module_id": "secret-tool"}, 404, None),
        ("acme", {"module": "globex-vault"}, 404, None),
        ("admin", {"module": "globex-vault", "company": "acme"}, 404, None),
        # A platform admin must name the company.
        ("admin", {"module": "notes"}, 422, "/company"),
        # Developers do not install.
        ("developer", {"module": "notes"}, 403, None),
        ("developer", {"module": "notes", "company": "acme"}, 403, None),
    ],
)
@pytest.mark.parametrize("url", [URL, PLAN_URL])
def test_who_may_install_for_whom(app, client, shelf, auth, who, body, status, pointer, url):
    if body.get("module_id") in shelf:
        body = {**body, "module_id": shelf[body["module_id"]]}
    before = installation_state(app)
    resp = client.post(url, json=body, headers=auth[who])
    problem = problem_of(resp, status)
    if pointer:
        assert error_pointers(problem) == [pointer]
    assert installation_state(app) == before


def test_without_a_token_nothing_is_installed(app, client, shelf):
    before = installation_state(app)
    problem_of(client.post(URL, json={"module": "notes"}), 401)
    problem_of(client.post(PLAN_URL, json={"module": "notes"}), 401)
    assert installation_state(app) == before


def test_own_private_modules_install_and_a_platform_admin_installs_for_a_named_company(
    app, client, shelf, auth
):
    resp = _install(client, auth["acme"], module="secret-tool")
    assert resp.status_code == 201, resp.get_json()
    resp = _install(client, auth["admin"], module="notes", company="globex")
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["company"] == "globex"
    # globex's own company admin may name their own company.
    resp = _install(client, auth["globex"], module="globex-vault", company="globex")
    assert resp.status_code == 201, resp.get_json()
    event = _events(app)[-1]
    assert (event.actor, event.company) == ("admin@globex.test", "globex")


def test_another_companys_installation_answers_exactly_like_a_missing_one(app, client, shelf, auth):
    inst = _install(client, auth["acme"], module="notes").get_json()
    own = client.get(f"{URL}{inst['id']}", headers=auth["acme"])
    assert own.status_code == 200 and own.get_json()["id"] == inst["id"]
    assert client.get(f"{URL}{inst['id']}", headers=auth["admin"]).status_code == 200

    missing_id = inst["id"] + 1000
    other = client.get(f"{URL}{inst['id']}", headers=auth["globex"])
    missing = client.get(f"{URL}{missing_id}", headers=auth["globex"])
    problem_of(other, 404)
    problem_of(missing, 404)
    assert other.get_data() == missing.get_data()
    assert dict(other.headers) == dict(missing.headers)
    # Nor can acme's developer read it (installations are for company admins).
    assert client.get(f"{URL}{inst['id']}", headers=auth["developer"]).get_data() == (
        missing.get_data()
    )


def test_an_installation_names_the_upgrade_available_or_null(app, client, shelf, auth):
    """The highest version it could move to with nothing else changing (a PUT of that
    `version` goes through), the same in every answer that carries the installation."""
    inventory = _install(client, auth["acme"], module="inventory", version="=1.0.0").get_json()
    assert inventory["upgrade_available"] == "2.0.0"
    notes = _install(client, auth["acme"], module="notes").get_json()
    assert notes["upgrade_available"] is None  # its only release
    # purchasing needs inventory ^1.0.0: from now on inventory can go as far as 1.4.0.
    assert _install(client, auth["acme"], **_purchasing()).status_code == 201
    url = f"{URL}{inventory['id']}"
    assert client.get(url, headers=auth["acme"]).get_json()["upgrade_available"] == "1.4.0"
    assert client.get(url, headers=auth["admin"]).get_json()["upgrade_available"] == "1.4.0"
    for who in ("acme", "admin"):
        listed = client.get(URL, headers=auth[who]).get_json()["items"]
        upgrades = {i["module"]: i["upgrade_available"] for i in listed}
        assert upgrades == {"inventory": "1.4.0", "notes": None, "purchasing": None}
    moved = client.put(url, json={"version": "1.4.0"}, headers=auth["acme"]).get_json()
    assert (moved["version"], moved["upgrade_available"]) == ("1.4.0", None)
    # Another company's installation: 404, exactly as a missing one.
    other = client.get(url, headers=auth["globex"])
    assert problem_of(other, 404) == problem_of(client.get(f"{URL}0", headers=auth["globex"]), 404)


# --- Configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, pointers",
    [
        ({**GOOD_CONFIG, "currency": 5}, ["/currency"]),  # wrong type
        ({**GOOD_CONFIG, "currency": "GBP"}, ["/currency"]),  # not in the enum
        ({"currency": "EUR"}, ["/api_key"]),  # a required field missing
        ({**GOOD_CONFIG, "colour": "red"}, ["/colour"]),  # additionalProperties: false
        ({**GOOD_CONFIG, "contact": "not-an-email"}, ["/contact"]),
        ({**GOOD_CONFIG, "callback": "not a uri"}, ["/callback"]),
        ({**GOOD_CONFIG, "starts_at": "next tuesday"}, ["/starts_at"]),
        ({**GOOD_CONFIG, "retries": -1}, ["/retries"]),
        ({**GOOD_CONFIG, "smtp": {"host": 25, "pasword": "x"}}, ["/smtp/host", "/smtp/pasword"]),
        ({**GOOD_CONFIG, "limits": {"daily": "many"}}, ["/limits/daily"]),
        (
            {"currency": 1, "contact": "x", "extra": True},
            ["/api_key", "/contact", "/currency", "/extra"],
        ),
    ],
)
def test_a_configuration_breaking_the_schema_is_422_with_pointers_into_it(
    app, client, shelf, auth, config, pointers
):
    before = installation_state(app)
    resp = _install(client, auth["acme"], **_purchasing(config=config))
    problem = problem_of(resp, 422)
    assert sorted(error_pointers(problem)) == sorted(pointers)
    assert installation_state(app) == before


def test_error_messages_never_repeat_a_secret(app, client, shelf, auth):
    resp = _install(client, auth["acme"], **_purchasing(config={**GOOD_CONFIG, "api_key": "s3"}))
    problem = problem_of(resp, 422)
    assert error_pointers(problem) == ["/api_key"]
    assert '"s3"' not in resp.get_data(as_text=True)


@pytest.mark.parametrize("config", [[], "EUR", 5, True])
def test_a_configuration_that_is_not_an_object_is_422(app, client, shelf, auth, config):
    before = installation_state(app)
    problem = problem_of(_install(client, auth["acme"], module="notes", config=config), 422)
    assert error_pointers(problem) == ["/config"]
    assert installation_state(app) == before


def test_formats_that_are_valid_pass(app, client, shelf, auth):
    config = {
        **GOOD_CONFIG,
        "contact": "buyer@acme.test",
        "callback": "https://acme.test/hooks/purchasing?x=1",
        "starts_at": "2024-01-31T09:30:00Z",
    }
    resp = _install(client, auth["acme"], **_purchasing(config=config))
    assert resp.status_code == 201, resp.get_json()


def test_a_megabyte_of_configuration_is_refused_and_nothing_is_stored(app, client, shelf, auth):
    before = installation_state(app)
    big = {"note": "x" * (1024 * 1024)}
    resp = _install(client, auth["acme"], module="notes", config=big)
    assert resp.status_code in (413, 422), resp.status_code
    problem_of(resp, resp.status_code)
    many = {f"k{i}": i for i in range(100_000)}  # about 1 MB in many small values
    resp = _install(client, auth["acme"], module="notes", config=many)
    assert resp.status_code in (413, 422), resp.status_code
    problem_of(resp, resp.status_code)
    assert installation_state(app) == before


def test_configuration_nested_too_deeply_is_refused_not_a_crash(app, client, shelf, auth):
    before = installation_state(app)
    deep = '{"module": "notes", "config": ' + '{"a": ' * 5000 + "1" + "}" * 5001
    resp = client.post(URL, data=deep, content_type="application/json", headers=auth["acme"])
    assert resp.status_code in (400, 413, 422), resp.status_code
    deep = {"a": 1}
    for _ in range(200):  # parses fine, but deeper than any configuration may be
        deep = {"a": deep}
    resp = _install(client, auth["acme"], module="notes", config=deep)
    assert resp.status_code in (413, 422), resp.status_code
    assert installation_state(app) == before


def test_secrets_are_masked_everywhere_but_stored_as_given_and_defaults_applied(
    app, client, shelf, auth
):
    resp = _install(client, auth["acme"], **_purchasing())
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    expected = {
        "currency": "EUR",
        "api_key": "********",
        "db_password": "********",
        "retries": 3,
        "limits": {"daily": 100, "burst": 10},
        "smtp": {"host": "mail.acme.test", "password": "********", "port": 587},
    }
    assert body["config"] == expected
    assert client.get(f"{URL}{body['id']}", headers=auth["acme"]).get_json()["config"] == expected
    listed = client.get(URL, headers=auth["acme"]).get_json()["items"]
    assert [i["config"] for i in listed if i["module"] == "purchasing"] == [expected]
    listed = client.get(f"{URL}?company=acme", headers=auth["admin"]).get_json()["items"]
    assert [i["config"] for i in listed if i["module"] == "purchasing"] == [expected]

    created = {e.module: e for e in _events(app)}
    assert created["purchasing"].data["config"] == expected
    assert created["inventory"].data["config"] == {"warehouse": "main"}
    for event in _rows(app, Event):
        text = json.dumps(event.data)
        assert "sk-live" not in text and "hunter2" not in text and "smtp-secret" not in text

    (row,) = _rows(app, Installation, module_name="purchasing")
    stored = {**expected, **GOOD_CONFIG, "smtp": {**GOOD_CONFIG["smtp"], "port": 587}}
    assert row.config == stored
    (revision,) = _rows(app, InstallationRevision, installation_id=row.id)
    assert revision.config == stored


def test_the_dependency_gets_its_schema_defaults_and_a_given_dependency_config(
    app, client, shelf, auth
):
    body = _purchasing(dependency_configs={"inventory": {"warehouse": "north"}})
    resp = _install(client, auth["acme"], **body)
    assert resp.status_code == 201, resp.get_json()
    (dep,) = resp.get_json()["installed_dependencies"]
    assert dep["config"] == {"warehouse": "north"}


def test_a_bad_dependency_config_fails_the_whole_plan(app, client, shelf, auth):
    before = installation_state(app)
    body = _purchasing(dependency_configs={"inventory": {"warehouse": 7}})
    problem = problem_of(_install(client, auth["acme"], **body), 422)
    assert error_pointers(problem) == ["/warehouse"]
    assert "inventory" in problem["detail"]
    assert installation_state(app) == before


# --- Install answers ------------------------------------------------------------------------


def test_install_answers_201_with_location_and_the_installation_shape(app, client, shelf, auth):
    body = _purchasing(endpoint_url="http://purchasing.acme.internal:9000")
    resp = _install(client, auth["acme"], **body)
    assert resp.status_code == 201, resp.get_json()
    inst = resp.get_json()
    assert set(inst) == INSTALLATION_KEYS | {"installed_dependencies"}
    assert resp.headers["Location"].endswith(f"/api/v1/installations/{inst['id']}")
    assert inst["company"] == "acme" and inst["module"] == "purchasing"
    assert (inst["module_id"], inst["version"]) == (shelf["purchasing"], "1.2.0")
    assert (inst["status"], inst["revision"]) == ("installed", 1)
    assert inst["endpoint_url"] == "http://purchasing.acme.internal:9000"
    assert inst["health"] == {
        "status": "unknown",
        "checked_at": None,
        "latency_ms": None,
        "message": None,
    }
    assert inst["created_at"].endswith("Z") or inst["created_at"].endswith("+00:00")
    (dep,) = inst["installed_dependencies"]
    assert set(dep) == INSTALLATION_KEYS
    assert (dep["module"], dep["version"], dep["revision"]) == ("inventory", "1.4.0", 1)
    assert dep["endpoint_url"] is None

    read = client.get(resp.headers["Location"], headers=auth["acme"])
    assert read.status_code == 200
    assert read.get_json() == {k: v for k, v in inst.items() if k != "installed_dependencies"}
    (revision,) = _rows(app, InstallationRevision, installation_id=inst["id"])
    assert revision.endpoint_url == "http://purchasing.acme.internal:9000"


def test_without_a_trailing_slash_install_answers_the_same(app, client, shelf, auth):
    resp = client.post(URL.rstrip("/"), json={"module": "notes"}, headers=auth["acme"])
    assert resp.status_code == 201
    assert resp.headers["Location"].endswith(f"/api/v1/installations/{resp.get_json()['id']}")


def test_installing_again_is_409_and_changes_nothing(app, client, shelf, auth):
    assert _install(client, auth["acme"], module="notes").status_code == 201
    before = installation_state(app)
    problem_of(_install(client, auth["acme"], module="notes"), 409)
    problem_of(client.post(PLAN_URL, json={"module": "notes"}, headers=auth["acme"]), 409)
    assert installation_state(app) == before
    # Another company installs it independently.
    assert _install(client, auth["globex"], module="notes").status_code == 201


@pytest.mark.parametrize(
    "body, status, pointer",
    [
        ({"module_id": "12"}, 422, "/module_id"),
        ({"module_id": True}, 422, "/module_id"),
        ({"module": ["notes"]}, 422, "/module"),
        ({"module": "notes", "version": 1}, 422, "/version"),
        ({"module": "notes", "install_dependencies": "yes"}, 422, "/install_dependencies"),
        ({"module": "notes", "company": 3}, 422, "/company"),
        ({"module": "notes", "endpoint_url": "ftp://x.test/"}, 422, "/endpoint_url"),
        ({"module": "notes", "endpoint_url": "http:///no-host"}, 422, "/endpoint_url"),
        ({"module": "notes", "version": "^^1"}, 422, "/version"),
        ({}, 422, "/module"),
        ({"module": "no-such-module"}, 404, None),
        ({"module_id": 999999}, 404, None),
    ],
)
def test_bad_install_bodies(app, client, shelf, auth, body, status, pointer):
    before = installation_state(app)
    problem = problem_of(_install(client, auth["acme"], **body), status)
    if pointer:
        assert pointer in error_pointers(problem)
    assert installation_state(app) == before


@pytest.mark.parametrize("data", ["not json", "[1, 2]", '"text"', ""])
def test_a_body_that_is_not_a_json_object_is_400(app, client, shelf, auth, data):
    before = installation_state(app)
    resp = client.post(URL, data=data, content_type="application/json", headers=auth["acme"])
    problem_of(resp, 400)
    assert installation_state(app) == before


@pytest.mark.parametrize("status", ["pending", "rejected", "deleted"])
def test_releases_that_are_not_approved_cannot_be_installed(app, client, auth, people, status):
    with app.app_context():
        if status == "pending":
            from tests.helpers import publish_manifest

            release = publish_manifest(
                {"name": "draft", "version": "1.0.0", "description": "d", "author": "a"},
                actor_email=people.developer.email,
            )
        else:
            release = approved_release("draft", "1.0.0")
            release.status = status
            db.session.commit()
        release_id = release.id
        db.session.remove()
    before = installation_state(app)
    problem_of(_install(client, auth["acme"], module="draft"), 404)
    problem_of(_install(client, auth["acme"], module_id=release_id), 404)
    assert installation_state(app) == before


# --- Plans ----------------------------------------------------------------------------------


def test_the_plan_shows_missing_dependencies_and_changes_nothing(app, client, shelf, auth):
    before = installation_state(app)
    resp = client.post(PLAN_URL, json={"module": "purchasing"}, headers=auth["acme"])
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {
        "plan": [
            {
                "module": "inventory",
                "version": "1.4.0",
                "module_id": shelf["inventory-1.4.0"],
                "action": "install",
            },
            {
                "module": "purchasing",
                "version": "1.2.0",
                "module_id": shelf["purchasing"],
                "action": "install",
            },
        ]
    }
    assert installation_state(app) == before
    # Once inventory is there, the plan keeps it (and still shows it).
    assert _install(client, auth["acme"], module="inventory", version="~1.2").status_code == 201
    plan = client.post(PLAN_URL, json={"module": "purchasing"}, headers=auth["acme"]).get_json()
    assert [(s["module"], s["version"], s["action"]) for s in plan["plan"]] == [
        ("inventory", "1.2.5", "keep"),
        ("purchasing", "1.2.0", "install"),
    ]
    # A platform admin plans for a named company.
    plan = client.post(
        PLAN_URL, json={"module": "purchasing", "company": "globex"}, headers=auth["admin"]
    )
    assert [s["action"] for s in plan.get_json()["plan"]] == ["install", "install"]


def test_no_plan_is_422_explaining_the_chain(app, client, people, auth):
    with app.app_context():
        approved_release("inventory", "1.4.0")
        approved_release("inventory", "2.0.0")
        approved_release("reporting", "3.1.0", deps={"inventory": "<2.0.0"})
        approved_release("purchasing", "1.2.0", deps={"inventory": "^2.0.0"})
        db.session.remove()
    assert _install(client, auth["acme"], module="reporting", install_dependencies=True).status_code
    before = installation_state(app)
    for url in (PLAN_URL, URL):
        body = {"module": "purchasing", "install_dependencies": True}
        problem = problem_of(client.post(url, json=body, headers=auth["acme"]), 422)
        text = problem["detail"]
        assert "purchasing 1.2.0 needs inventory ^2.0.0" in text
        assert "acme has inventory 1.4.0" in text
        assert "reporting 3.1.0 needs as <2.0.0" in text
        assert error_pointers(problem) == ["/module"]
    assert installation_state(app) == before


def test_a_missing_dependency_without_install_dependencies_is_422_naming_it(
    app, client, shelf, auth
):
    before = installation_state(app)
    problem = problem_of(
        _install(client, auth["acme"], module="purchasing", config=GOOD_CONFIG), 422
    )
    assert "inventory 1.4.0" in problem["detail"]
    assert error_pointers(problem) == ["/install_dependencies"]
    assert "inventory" in problem["errors"][0]["message"]
    assert installation_state(app) == before

    resp = _install(client, auth["acme"], **_purchasing())
    assert resp.status_code == 201
    assert [d["module"] for d in resp.get_json()["installed_dependencies"]] == ["inventory"]


def test_an_unavailable_dependency_is_named(app, client, people, auth):
    with app.app_context():
        approved_release("ledger", "1.0.0", visibility="private", actor_email="dev@globex.test")
        approved_release("billing", "1.0.0", deps={"ledger": "^1.0.0"})
        db.session.remove()
    before = installation_state(app)
    body = {"module": "billing", "install_dependencies": True}
    problem = problem_of(_install(client, auth["acme"], **body), 422)
    assert "no release of ledger is available to acme" in problem["detail"]
    assert installation_state(app) == before


def test_a_cycle_installs_together_each_at_revision_one_with_its_event(app, client, people, auth):
    with app.app_context():
        approved_release("alpha", "1.0.0", deps={"beta": "^1.0.0"})
        approved_release("beta", "1.0.0", deps={"alpha": "^1.0.0"})
        db.session.remove()
    plan = client.post(PLAN_URL, json={"module": "alpha"}, headers=auth["acme"]).get_json()
    assert sorted((s["module"], s["action"]) for s in plan["plan"]) == [
        ("alpha", "install"),
        ("beta", "install"),
    ]
    problem_of(_install(client, auth["acme"], module="alpha"), 422)  # beta is missing
    resp = _install(client, auth["acme"], module="alpha", install_dependencies=True)
    assert resp.status_code == 201, resp.get_json()
    assert [d["module"] for d in resp.get_json()["installed_dependencies"]] == ["beta"]
    rows = {i.module_name: i for i in _rows(app, Installation)}
    assert sorted(rows) == ["alpha", "beta"]
    created = _events(app)
    assert sorted(e.module for e in created) == ["alpha", "beta"]
    assert {e.installation_id for e in created} == {rows["alpha"].id, rows["beta"].id}
    assert all(e.data["revision"] == 1 for e in created)
    for inst in rows.values():
        assert inst.revision == 1
        (revision,) = _rows(app, InstallationRevision, installation_id=inst.id)
        assert (revision.revision, revision.reason, revision.module_id) == (
            1,
            "install",
            inst.module_id,
        )
    problem_of(_install(client, auth["acme"], module="beta"), 409)


def test_modules_by_id_and_by_constraint(app, client, shelf, auth):
    resp = _install(client, auth["acme"], module_id=shelf["inventory-1.0.0"])
    assert resp.status_code == 201 and resp.get_json()["version"] == "1.0.0"
    resp = _install(client, auth["globex"], module="inventory", version="^1.2")
    assert resp.status_code == 201 and resp.get_json()["version"] == "1.4.0"
    resp = _install(client, auth["admin"], module="inventory", company="globex")
    problem_of(resp, 409)


@pytest.mark.parametrize(
    "constraint, version",
    [("*", "2.0.0"), ("^1.2", "1.4.0"), ("~1.2", "1.2.5"), ("<1.2.0", "1.0.0"), ("1.x", "1.4.0")],
)
def test_constraints_pick_the_highest_satisfying_release(
    app, client, shelf, auth, constraint, version
):
    plan = client.post(
        PLAN_URL, json={"module": "inventory", "version": constraint}, headers=auth["acme"]
    ).get_json()
    assert plan["plan"] == [
        {
            "module": "inventory",
            "version": version,
            "module_id": shelf[f"inventory-{version}"],
            "action": "install",
        }
    ]


def test_deprecated_releases_only_when_pinned_exactly(app, client, shelf, auth, people):
    with app.app_context():
        admin = users.user_by_email(people.admin.email)
        change_status(shelf["inventory-1.4.0"], "deprecated", actor=admin)
        db.session.remove()

    def planned(body):
        resp = client.post(PLAN_URL, json=body, headers=auth["acme"])
        assert resp.status_code == 200, resp.get_json()
        return [(s["module"], s["version"]) for s in resp.get_json()["plan"]]

    assert planned({"module": "inventory", "version": "^1.2"}) == [("inventory", "1.2.5")]
    assert planned({"module": "purchasing"})[0] == ("inventory", "1.2.5")
    assert planned({"module": "inventory", "version": "1.4.0"}) == [("inventory", "1.4.0")]
    assert planned({"module": "inventory", "version": "=1.4.0"}) == [("inventory", "1.4.0")]
    assert planned({"module_id": shelf["inventory-1.4.0"]}) == [("inventory", "1.4.0")]
    problem_of(
        client.post(
            PLAN_URL, json={"module": "inventory", "version": ">=1.3 <2"}, headers=auth["acme"]
        ),
        422,
    )
    resp = _install(client, auth["acme"], module="inventory", version="1.4.0")
    assert resp.status_code == 201 and resp.get_json()["version"] == "1.4.0"


def test_a_failure_late_in_the_plan_leaves_nothing_half_done(app, client, people, auth):
    """The dependency is installed first in the plan's order; the requested module's own
    configuration fails: neither is stored."""
    with app.app_context():
        approved_release("core", "1.0.0")
        approved_release(
            "addon",
            "1.0.0",
            deps={"core": "^1.0.0"},
            config_schema={"type": "object", "required": ["token"]},
        )
        db.session.remove()
    before = installation_state(app)
    resp = _install(client, auth["acme"], module="addon", install_dependencies=True, config={})
    assert error_pointers(problem_of(resp, 422)) == ["/token"]
    assert installation_state(app) == before


# --- Lists ----------------------------------------------------------------------------------


def test_lists_filter_page_and_clamp(app, client, shelf, auth):
    assert _install(client, auth["acme"], **_purchasing()).status_code == 201
    assert _install(client, auth["acme"], module="notes").status_code == 201
    assert _install(client, auth["globex"], module="notes").status_code == 201
    with app.app_context():
        db.session.execute(
            sa.update(Installation)
            .where(Installation.module_name == "notes")
            .values(health_status="healthy")
        )
        db.session.execute(
            sa.update(Installation)
            .where(Installation.module_name == "inventory")
            .values(status="uninstalled")
        )
        db.session.commit()
        db.session.remove()

    def listed(headers, query=""):
        resp = client.get(f"{URL}{query}", headers=headers)
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        assert set(body) == {"items", "page", "per_page", "total"}
        return body, [(i["company"], i["module"]) for i in body["items"]]

    body, items = listed(auth["acme"])
    assert items == [("acme", "notes"), ("acme", "purchasing")]
    assert (body["page"], body["per_page"], body["total"]) == (1, 20, 2)
    assert listed(auth["acme"], "?status=all")[1] == [
        ("acme", "inventory"),
        ("acme", "notes"),
        ("acme", "purchasing"),
    ]
    assert listed(auth["acme"], "?status=uninstalled")[1] == [("acme", "inventory")]
    assert listed(auth["acme"], "?module=purchasing")[1] == [("acme", "purchasing")]
    assert listed(auth["acme"], "?health=healthy")[1] == [("acme", "notes")]
    assert listed(auth["acme"], "?health=unhealthy")[1] == []
    assert listed(auth["acme"], "?company=acme")[1] == listed(auth["acme"])[1]
    assert listed(auth["globex"])[1] == [("globex", "notes")]
    # Platform admins: everything, or one company.
    assert sorted(listed(auth["admin"])[1]) == [
        ("acme", "notes"),
        ("acme", "purchasing"),
        ("globex", "notes"),
    ]
    assert listed(auth["admin"], "?company=globex")[1] == [("globex", "notes")]
    assert listed(auth["admin"], "?module=notes&health=healthy")[0]["total"] == 2
    # Paging.
    body, items = listed(auth["admin"], "?per_page=1&page=2")
    assert (body["page"], body["per_page"], body["total"], len(items)) == (2, 1, 3, 1)
    assert listed(auth["admin"], "?per_page=500")[0]["per_page"] == 100
    assert listed(auth["admin"], "?page=9")[1] == []


@pytest.mark.parametrize(
    "who, query, status, pointer",
    [
        ("acme", "?page=0", 422, "/page"),
        ("acme", "?per_page=-1", 422, "/per_page"),
        ("acme", "?per_page=ten", 422, "/per_page"),
        ("acme", "?status=broken", 422, "/status"),
        ("acme", "?health=fine", 422, "/health"),
        ("globex", "?company=acme", 404, None),
        ("developer", "", 403, None),
    ],
)
def test_bad_list_requests(app, client, shelf, auth, who, query, status, pointer):
    problem = problem_of(client.get(f"{URL}{query}", headers=auth[who]), status)
    if pointer:
        assert error_pointers(problem) == [pointer]


# --- Races ----------------------------------------------------------------------------------

RACERS = 6


def race_installs(app, headers: list[dict], body: dict) -> list[tuple[int, dict]]:
    """POST the same install once per header set, all at once (tests.helpers.race_requests).
    Returns (status, body) per request."""
    return race_requests(
        app, [lambda client, h=h: client.post(URL, json=body, headers=h) for h in headers]
    )


def assert_one_winner(app, results, modules: list[str]) -> None:
    statuses = sorted(status for status, _body in results)
    assert statuses == [201] + [409] * (len(results) - 1), results
    for status, body in results:
        if status == 409:
            assert body["status"] == 409 and body["detail"]
    with app.app_context():
        rows = db.session.execute(sa.select(Installation)).scalars().all()
        assert sorted(i.module_name for i in rows) == sorted(modules)
        assert all(i.revision == 1 for i in rows)
        revisions = db.session.execute(sa.select(InstallationRevision)).scalars().all()
        assert sorted(r.installation_id for r in revisions) == sorted(i.id for i in rows)
        created = db.session.execute(
            sa.select(Event).where(Event.type == "installation.created")
        ).scalars()
        assert sorted(e.module for e in created) == sorted(modules)
        db.session.remove()


def _racer_headers(app, people) -> list[dict]:
    """A token per thread: acme's company admin (fresh JWTs) and the platform admin."""
    headers = [bearer(app, people.acme_admin.email) for _ in range(RACERS - 2)]
    admin = [bearer(app, people.admin.email) for _ in range(2)]
    return headers + admin


@pytest.mark.truncate
@pytest.mark.parametrize("module, modules", [("notes", ["notes"]), ("purchasing", None)])
def test_racing_installs_on_the_runs_backend(app, shelf, people, module, modules):
    body = {"module": module, "company": "acme", "install_dependencies": True}
    if module == "purchasing":
        body["config"] = GOOD_CONFIG
        modules = ["inventory", "purchasing"]
    results = race_installs(app, _racer_headers(app, people), body)
    assert_one_winner(app, results, modules)


@pytest.fixture
def sqlite_app(tmp_path):
    """An embedded SQLite app with inventory 1.4.0 and 2.0.0, purchasing and notes."""

    def seed(_people):
        approved_shelf(dict.fromkeys(("1.4.0", "2.0.0"), INVENTORY_SCHEMA), PURCHASING_SCHEMA)

    with embedded_sqlite_app(tmp_path, seed) as app_and_people:
        yield app_and_people


@pytest.mark.parametrize("module, modules", [("notes", ["notes"]), ("purchasing", None)])
def test_racing_installs_on_embedded_sqlite(sqlite_app, module, modules):
    app, people = sqlite_app
    body = {"module": module, "company": "acme", "install_dependencies": True}
    if module == "purchasing":
        body["config"] = GOOD_CONFIG
        modules = ["inventory", "purchasing"]
    results = race_installs(app, _racer_headers(app, people), body)
    assert_one_winner(app, results, modules)


@pytest.mark.truncate
def test_racing_a_dependency_against_the_module_that_needs_it(app, shelf, people):
    """One thread installs inventory alone while others install purchasing (which brings
    inventory): whatever wins, every answer is 201 or 409 and inventory is installed once."""
    headers = _racer_headers(app, people)
    bodies = [
        {"module": "inventory", "version": "^1.0", "company": "acme"}
        if i % 2
        else {**_purchasing(), "company": "acme"}
        for i in range(len(headers))
    ]
    results = race_requests(
        app,
        [
            lambda client, b=b, h=h: client.post(URL, json=b, headers=h)
            for b, h in zip(bodies, headers, strict=True)
        ],
    )
    assert all(status in (201, 409) for status, _ in results), results
    with app.app_context():
        names = sorted(i.module_name for i in db.session.execute(sa.select(Installation)).scalars())
        db.session.remove()
    assert names.count("inventory") == 1
    assert names.count("purchasing") <= 1


def assert_upgrade_race(app, people) -> None:
    """acme has inventory 1.4.0; racers install reporting, which needs inventory ^2.0.0, so
    each plan upgrades inventory and installs reporting: one applies the whole plan, the
    others change nothing."""
    with app.app_context():
        approved_release("reporting", "1.0.0", deps={"inventory": "^2.0.0"})
        db.session.remove()
    client = app.test_client()
    acme = bearer(app, people.acme_admin.email)
    assert _install(client, acme, module="inventory", version="=1.4.0").status_code == 201
    body = {"module": "reporting", "company": "acme", "install_dependencies": True}
    results = race_installs(app, _racer_headers(app, people), body)
    statuses = sorted(status for status, _body in results)
    assert statuses == [201] + [409] * (len(results) - 1), results
    with app.app_context():
        rows = {i.module_name: i for i in db.session.execute(sa.select(Installation)).scalars()}
        assert sorted(rows) == ["inventory", "reporting"]
        assert (rows["inventory"].release.version, rows["inventory"].revision) == ("2.0.0", 2)
        assert rows["reporting"].revision == 1
        revisions = db.session.execute(
            sa.select(InstallationRevision.installation_id, InstallationRevision.revision)
        ).all()
        assert sorted(revisions) == sorted(
            [(rows["inventory"].id, 1), (rows["inventory"].id, 2), (rows["reporting"].id, 1)]
        )
        kinds = db.session.execute(
            sa.select(Event.type, Event.module).where(Event.type.like("installation.%"))
        ).all()
        assert sorted(kinds) == [
            ("installation.created", "inventory"),
            ("installation.created", "reporting"),
            ("installation.updated", "inventory"),
        ]
        db.session.remove()


@pytest.mark.truncate
def test_racing_installs_that_upgrade_a_dependency_on_the_runs_backend(app, shelf, people):
    assert_upgrade_race(app, people)


def test_racing_installs_that_upgrade_a_dependency_on_embedded_sqlite(sqlite_app):
    assert_upgrade_race(*sqlite_app)
