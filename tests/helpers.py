"""Helpers shared by the tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import re
import uuid
from contextlib import contextmanager
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import flask_migrate
import psycopg
import sqlalchemy as sa

from portal.extensions import db
from portal.services.accounts import users as accounts

PASSWORD = "correct-horse-battery"
# The `people` fixture's e-mail addresses (make_people), for tests that sign in by address.
ADMIN = "admin@example.com"
ACME_DEV = "dev@acme.test"
ACME_ADMIN = "admin@acme.test"
GLOBEX_DEV = "dev@globex.test"
GLOBEX_ADMIN = "admin@globex.test"
RUN_SUFFIX = uuid.uuid4().hex[:10]


def create_postgres_database(server_url: str, name: str):
    """Create database `name` on the server of `server_url`; returns (url, drop)."""
    parts = urlsplit(server_url.replace("postgresql+psycopg://", "postgresql://"))
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit(parts._replace(path=f"/{name}")), drop


def migrate_to_head(app) -> None:
    with app.app_context():
        flask_migrate.upgrade()
        db.session.remove()


def truncate_all(engine) -> None:
    """Empty every table, children first. DELETE rather than TRUNCATE: a test leaves a
    handful of rows, and TRUNCATE's per-table file work took ~0.7 s per test on PostgreSQL."""
    # catalog_generation is a single row the migration creates; it only ever counts up.
    tables = [t.name for t in reversed(db.metadata.sorted_tables) if t.name != "catalog_generation"]
    with engine.begin() as conn:
        for table in tables:
            conn.execute(sa.text(f"DELETE FROM {table}"))


def make_people() -> SimpleNamespace:
    accounts.create_company("acme", "Acme")
    accounts.create_company("globex", "Globex")
    users = {
        "admin": accounts.create_user(ADMIN, PASSWORD, "platform_admin"),
        "developer": accounts.create_user(ACME_DEV, PASSWORD, "developer", "acme"),
        "acme_admin": accounts.create_user(ACME_ADMIN, PASSWORD, "company_admin", "acme"),
        "globex_dev": accounts.create_user(GLOBEX_DEV, PASSWORD, "developer", "globex"),
        "globex_admin": accounts.create_user(GLOBEX_ADMIN, PASSWORD, "company_admin", "globex"),
    }
    return SimpleNamespace(**{k: SimpleNamespace(id=u.id, email=u.email) for k, u in users.items()})


def login(client, email: str, password: str = PASSWORD):
    resp = client.post("/login", data={"email": email, "password": password})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
    return resp


def bearer(app, email: str) -> dict:
    """Authorization header with a fresh JWT for the user with this email."""
    with app.app_context():
        user = accounts.user_by_email(email)
        token = accounts.issue_jwt(user)["access_token"]
        db.session.remove()
    return {"Authorization": f"Bearer {token}"}


class HtmxClient:
    """A test client whose requests carry HX-Request: true."""

    def __init__(self, app):
        self._client = app.test_client()

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if name in {"get", "post", "put", "patch", "delete", "open"}:

            def call(*args, headers=None, **kwargs):
                merged = {"HX-Request": "true", **(headers or {})}
                return attr(*args, headers=merged, **kwargs)

            return call
        return attr


def count(model) -> int:
    return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def publish_package(data: bytes, *, actor_email: str, **submission):
    """Publish package bytes through the service, as an upload would (needs an app context)."""
    import io

    from portal.services.publishing.releases import package_store, publish_release
    from portal.services.publishing.storage import stream_to_temp
    from portal.services.publishing.submissions import PackageFile, Submission

    path, digest, size = stream_to_temp(io.BytesIO(data), package_store(), max_bytes=1 << 30)
    sub = Submission(package=PackageFile(path, digest, size, "upload"), **submission)
    return publish_release(sub, actor=accounts.user_by_email(actor_email))


def publish_manifest(data: dict, *, actor_email: str, **submission):
    """Publish a manifest-only release through the service (needs an app context)."""
    from portal.services.publishing.releases import publish_release
    from portal.services.publishing.submissions import Submission

    sub = Submission(manifest_json=data, **submission)
    return publish_release(sub, actor=accounts.user_by_email(actor_email))


# --- Publishing: the store, "nothing left behind", problem+json ------------------------------


def stored_files(app) -> list[str]:
    """Every file under the package store, `tmp/` included, as sorted relative paths."""
    from pathlib import Path

    root = Path(app.config["MODULE_STORAGE_PATH"])
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def empty_store(app) -> None:
    """Remove everything under the package store (it outlives the per-test truncation)."""
    import shutil
    from pathlib import Path

    root = Path(app.config["MODULE_STORAGE_PATH"])
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)


def registry_state(app) -> dict:
    """Rows and files a failed publish must not change: releases, their dependencies and
    status history, outbox events, and every file in the store."""
    from portal.models import Event, ModuleDependency, ModuleRelease, StatusChange

    with app.app_context():
        state = {
            "releases": count(ModuleRelease),
            "dependencies": count(ModuleDependency),
            "status_changes": count(StatusChange),
            "events": count(Event),
        }
        db.session.remove()
    state["files"] = stored_files(app)
    return state


def problem_of(resp, status: int) -> dict:
    """Assert an RFC 9457 answer with this status and return its body."""
    assert resp.status_code == status, resp.get_data(as_text=True)[:2000]
    assert resp.mimetype == "application/problem+json", resp.mimetype
    body = resp.get_json()
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    return body


def error_pointers(body: dict) -> list[str]:
    return [e["pointer"] for e in body.get("errors", [])]


def set_release_status(app, module_id: int, status: str, reason: str | None = None) -> None:
    """Move a release to `status` directly, without the review service's rules (a shortcut
    for tests that need a release in a given state)."""
    from portal.models import ModuleRelease

    with app.app_context():
        release = db.session.get(ModuleRelease, module_id)
        release.status, release.status_reason = status, reason
        db.session.commit()
        db.session.remove()


def approved_release(
    name: str,
    version: str = "1.0.0",
    *,
    deps: dict[str, str] | None = None,
    config_schema: dict | None = None,
    actor_email: str = "dev@acme.test",
    admin_email: str = "admin@example.com",
    visibility: str | None = None,
    **manifest_fields,
):
    """Publish a manifest-only release and approve it (needs an app context and people)."""
    from portal.services.review.decisions import change_status

    data = {
        "name": name,
        "version": version,
        "description": f"{name} module",
        "author": "Tests",
        **manifest_fields,
    }
    if deps:
        data["dependencies"] = [{"name": n, "version": c} for n, c in deps.items()]
    if config_schema is not None:
        data["config_schema"] = config_schema
    release = publish_manifest(data, actor_email=actor_email, visibility=visibility)
    return change_status(release.id, "approved", actor=accounts.user_by_email(admin_email))


# --- Installations: "nothing half-done" -----------------------------------------------------


def installation_state(app) -> dict:
    """Rows a failed install or plan must not change: installations (by status), their
    revisions and outbox events."""
    from portal.models import Event, Installation, InstallationRevision

    with app.app_context():
        state = {
            "installations": sorted(
                (i.module_name, i.company.slug, i.status, i.revision, i.module_id)
                for i in db.session.execute(sa.select(Installation)).scalars()
            ),
            "revisions": count(InstallationRevision),
            "events": count(Event),
        }
        db.session.remove()
    return state


# --- Revisions, rollback, uninstall, heartbeats: "nothing half-done" ---------------------------


def lifecycle_state(app) -> dict:
    """Everything a refused change, rollback, uninstall or heartbeat must leave as it was:
    each installation's full row (status, release, revision, configuration, endpoint, health),
    every revision and every outbox event and health change (by id)."""
    from portal.models import Event, HealthChange, Installation, InstallationRevision

    with app.app_context():
        rows = db.session.execute(sa.select(Installation).order_by(Installation.id)).scalars()
        state = {
            "installations": [
                (
                    i.id,
                    i.company.slug,
                    i.module_name,
                    i.status,
                    i.module_id,
                    i.revision,
                    i.config,
                    i.endpoint_url,
                    i.health_status,
                )
                for i in rows
            ],
            "revisions": db.session.execute(
                sa.select(
                    InstallationRevision.installation_id, InstallationRevision.revision
                ).order_by(InstallationRevision.id)
            ).all(),
            "events": db.session.execute(sa.select(Event.id).order_by(Event.id)).scalars().all(),
            "health_changes": count(HealthChange),
        }
        db.session.remove()
    return state


def bulk_modules(app, start: int, stop: int, by: str = "dev@acme.test") -> None:
    """Approved, latest, public modules bulk-0000N with tags and a dependency on
    base-objects, inserted in bulk (acme publishes them, `by` owns them)."""
    from portal.lib.versions import sort_key
    from portal.models import Company, ModuleDependency, ModuleRelease, User
    from portal.services.catalog.names import fold_name
    from tests.packaging import manifest

    with app.app_context():
        acme = db.session.execute(sa.select(Company.id).where(Company.slug == "acme")).scalar()
        owner = db.session.execute(sa.select(User.id).where(User.email == by)).scalar()
        rows = [
            {
                "name": f"bulk-{i:05d}",
                "name_fold": fold_name(f"bulk-{i:05d}"),
                "version": "1.0.0",
                "version_key": sort_key("1.0.0"),
                "prerelease": False,
                "is_latest": True,
                "display_name": f"Bulk {i}",
                "description": "A module made in bulk",
                "author": "Bulk",
                "category": f"cat-{i % 7}",
                "tags": ["bulk", f"t{i % 5}"],
                "manifest": manifest(f"bulk-{i:05d}"),
                "status": "approved",
                "visibility": "public",
                "publisher_id": acme,
                "owner_id": owner,
            }
            for i in range(start, stop)
        ]
        db.session.execute(sa.insert(ModuleRelease), rows)
        ids = db.session.execute(
            sa.select(ModuleRelease.id).where(ModuleRelease.name.like("bulk-%"))
        ).scalars()
        have = set(db.session.execute(sa.select(ModuleDependency.module_id).distinct()).scalars())
        deps = [
            {"module_id": i, "name": "base-objects", "constraint": ">=1.0.0", "position": 0}
            for i in ids
            if i not in have
        ]
        db.session.execute(sa.insert(ModuleDependency), deps)
        db.session.commit()
        db.session.remove()


SAVEPOINT = re.compile(r"\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b", re.I)


@contextmanager
def captured_statements(app):
    """The SQL statements the app's engine runs inside the block, as (text, parameters).
    Savepoints are left out: the app takes none; they are the rolled-back test's own
    (tests/isolation.py), and a statement count must not depend on the isolation."""
    statements: list[tuple[str, object]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if not SAVEPOINT.match(statement):
            statements.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)


# --- Installing through the API: tests/api/test_installations.py and test_installation_lifecycle.py


def role_headers(app, people) -> dict[str, dict]:
    """A bearer header (a fresh JWT) per role: "acme" and "globex" (their company admins),
    "admin", "developer" (acme's) and "globex_dev"."""
    emails = {
        "acme": people.acme_admin.email,
        "globex": people.globex_admin.email,
        "admin": people.admin.email,
        "developer": people.developer.email,
        "globex_dev": people.globex_dev.email,
    }
    return {role: bearer(app, email) for role, email in emails.items()}


def approved_shelf(inventory: dict[str, dict | None], purchasing_schema: dict) -> dict[str, int]:
    """Approved releases: inventory at each version of `inventory` (with that config
    schema), purchasing 1.2.0 (needs inventory ^1.0.0) and notes 1.0.0 (no dependencies,
    no schema). Release ids by "inventory-<version>", "purchasing", "notes". Needs an app
    context and people."""
    ids = {
        f"inventory-{version}": approved_release("inventory", version, config_schema=schema).id
        for version, schema in inventory.items()
    }
    ids["purchasing"] = approved_release(
        "purchasing", "1.2.0", deps={"inventory": "^1.0.0"}, config_schema=purchasing_schema
    ).id
    ids["notes"] = approved_release("notes", "1.0.0").id
    return ids


@contextmanager
def embedded_sqlite_app(tmp_path, seed):
    """An embedded SQLite app in `tmp_path`, whatever backend the rest of the run uses:
    migrated, with people, and `seed(people)` run in an app context. Yields (app, people)."""
    from portal import create_app
    from portal.config import TestConfig

    app = create_app(
        TestConfig(
            f"sqlite:///{tmp_path}/embedded.db",
            INSTANCE_PATH=str(tmp_path),
            MODULE_STORAGE_PATH=str(tmp_path / "packages"),
        )
    )
    with app.app_context():
        flask_migrate.upgrade()
        people = make_people()
        seed(people)
        db.session.remove()
    try:
        yield app, people
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def race_requests(app, calls: list) -> list[tuple[int, dict]]:
    """Run each call(client) in its own thread with its own test client, released together
    by a barrier. Returns (status, JSON body) per call; an unexpected error (they propagate
    in TESTING) is recorded as (500, {"error": ...})."""
    import threading

    start = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def racer(i: int) -> None:
        client = app.test_client()
        try:
            start.wait(timeout=30)
            resp = calls[i](client)
            results[i] = (resp.status_code, resp.get_json())
        except Exception as exc:
            results[i] = (500, {"error": repr(exc)})

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def detached_rows(app, query: sa.Select) -> list:
    """The ORM rows `query` selects, detached, to read after the app context is gone."""
    with app.app_context():
        rows = list(db.session.execute(query).scalars())
        db.session.expunge_all()
        db.session.remove()
    return rows


@contextmanager
def meanwhile(app, action, at):
    """Run `action` in another thread (its own app context, session and transaction,
    committed) the first time the main thread is about to run a statement for which
    `at(statement, parameters)` is true; an error of the action is raised in the main
    thread. Yields a list that holds True once the action has run."""
    import threading

    main = threading.get_ident()
    fired: list[bool] = []

    def before(_conn, _cursor, statement, params, _context, _many):
        if fired or threading.get_ident() != main or not at(statement, params):
            return
        fired.append(True)
        failures: list[BaseException] = []

        def run():
            with app.app_context():
                try:
                    action()
                except BaseException as exc:  # reported in the main thread
                    failures.append(exc)
                finally:
                    db.session.remove()

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the concurrent request did not finish"
        if failures:
            raise failures[0]

    sa.event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield fired
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", before)
