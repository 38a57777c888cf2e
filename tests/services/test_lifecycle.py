"""The lifecycle service (revisions, uninstall, health) below the API: secrets sent back
masked, who depends on whom, cascades in reverse dependency order and all-or-nothing,
changes that lose a race with another request between reading and writing, rollbacks to
releases that are gone, and heartbeats (one event per change of health, however many
runtimes report at once).

"Meanwhile" tests run another request, in its own thread, session and transaction, at the
moment the service is about to write: just before its unit of work takes SQLite's write lock
(BEGIN IMMEDIATE) or, on PostgreSQL, the company's installation lock (an advisory lock, see
installations.lock_company_installations). Everything read before that point is stale by the
time the write happens. The races further down run two requests at once instead."""

from __future__ import annotations

import json
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.database import WRITE_INTENT
from portal.extensions import db
from portal.lib.config_schema import MASK, keep_secrets
from portal.lib.versions import Constraint, Version
from portal.models import Event, HealthChange, Installation, InstallationRevision, ModuleRelease
from portal.services.accounts import users
from portal.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from portal.services.installations import lifecycle, upgrades
from portal.services.installations.installs import InstallRequest, install_module
from portal.services.installations.revisions import revision_changes
from tests.helpers import ACME_ADMIN, ADMIN, approved_release, bearer, lifecycle_state
from tests.helpers import meanwhile as helpers_meanwhile


@pytest.fixture
def ctx(app):
    """A request context, as the API runs the service in: on SQLite, reads begin deferred
    and only a unit of work takes the write lock."""
    with app.test_request_context():
        yield
        db.session.remove()


def _user(email=ACME_ADMIN):
    return users.user_by_email(email)


def _install(module, version="*", actor=ACME_ADMIN, **kw) -> Installation:
    kw.setdefault("install_dependencies", True)
    inst, _deps = install_module(
        InstallRequest(module=module, version=version, **kw), actor=_user(actor)
    )
    return inst


def _by_name(company="acme") -> dict[str, Installation]:
    db.session.expire_all()
    rows = db.session.execute(
        sa.select(Installation).where(Installation.company.has(slug=company))
    ).scalars()
    return {i.module_name: i for i in rows}


def _events(type_) -> list[Event]:
    return list(
        db.session.execute(sa.select(Event).where(Event.type == type_).order_by(Event.id)).scalars()
    )


def meanwhile(app, action):
    """helpers.meanwhile when the main thread is about to write (see the module
    docstring): its BEGIN IMMEDIATE on SQLite, its company lock on PostgreSQL."""
    return helpers_meanwhile(
        app,
        action,
        at=lambda statement, _params: (
            statement.startswith("BEGIN IMMEDIATE") or "pg_advisory_xact_lock" in statement
        ),
    )


# --- "********" keeps a stored secret ---------------------------------------------------------

SECRET_SCHEMA = {
    "type": "object",
    "properties": {
        "token": {"type": "string", "writeOnly": True},
        "plain": {"type": "string"},
        "smtp": {
            "type": "object",
            "properties": {"password": {"type": "string", "format": "password"}},
        },
        "a/b": {"type": "string", "writeOnly": True},
    },
}


def test_a_masked_secret_keeps_the_stored_value_at_any_depth():
    stored = {"token": "t-1", "smtp": {"password": "p-1"}, "a/b": "s-1", "plain": "x"}
    new = {"token": MASK, "smtp": {"password": MASK}, "a/b": MASK, "plain": MASK}
    kept = keep_secrets(SECRET_SCHEMA, new, stored)
    # Only secrets are restored; "********" in an ordinary field is just text.
    assert kept == {"token": "t-1", "smtp": {"password": "p-1"}, "a/b": "s-1", "plain": MASK}
    assert new["token"] == MASK  # the input is not changed


def test_a_new_secret_replaces_and_a_masked_one_with_nothing_stored_is_dropped():
    stored = {"token": "t-1"}
    assert keep_secrets(SECRET_SCHEMA, {"token": "t-2"}, stored) == {"token": "t-2"}
    assert keep_secrets(SECRET_SCHEMA, {"token": MASK, "smtp": {"password": MASK}}, {}) == {
        "smtp": {}
    }
    assert keep_secrets(SECRET_SCHEMA, {"smtp": "text"}, stored) == {"smtp": "text"}
    assert keep_secrets(None, {"token": MASK}, stored) == {"token": MASK}
    assert keep_secrets(SECRET_SCHEMA, ["x"], stored) == ["x"]


# --- Dependents -------------------------------------------------------------------------------


def test_dependents_are_found_through_others_and_only_among_active_installations(ctx, people):
    approved_release("core", "1.0.0")
    approved_release("ledger", "1.0.0", deps={"core": "^1.0.0"})
    approved_release("billing", "1.0.0", deps={"ledger": "^1.0.0"})
    approved_release("audit", "1.0.0", deps={"core": "*"})
    approved_release(
        "notes",
        "1.0.0",
        dependencies=[{"name": "core", "version": "*", "optional": True}],
    )
    _install("billing")
    _install("audit")
    _install("notes")
    _install("billing", actor=ADMIN, company="globex")  # globex's do not count for acme
    rows = _by_name()
    assert lifecycle.dependents_of(rows["core"]) == ["audit", "billing", "ledger"]
    assert lifecycle.dependents_of(rows["ledger"]) == ["billing"]
    assert lifecycle.dependents_of(rows["billing"]) == []
    lifecycle.uninstall_installation(rows["audit"].id, actor=_user())
    assert lifecycle.dependents_of(_by_name()["core"]) == ["billing", "ledger"]
    # An optional dependency does not hold its module back.
    assert "notes" not in lifecycle.dependents_of(_by_name()["core"])


def test_a_cascade_goes_in_reverse_dependency_order_through_a_diamond(ctx, people):
    """core ← left, core ← right, left ← top, right ← top: top first, core last."""
    approved_release("core", "1.0.0")
    approved_release("left", "1.0.0", deps={"core": "^1.0.0"})
    approved_release("right", "1.0.0", deps={"core": "^1.0.0"})
    approved_release("top", "1.0.0", deps={"left": "*", "right": "*"})
    _install("top")
    core = _by_name()["core"]
    with pytest.raises(Conflict) as exc:
        lifecycle.uninstall_installation(core.id, actor=_user())
    assert exc.value.extra == {"dependents": ["left", "right", "top"]}
    removed = lifecycle.uninstall_installation(core.id, actor=_user(), cascade=True)
    order = [i.module_name for i in removed]
    assert order[0] == "top" and order[-1] == "core"
    assert [e.module for e in _events("installation.uninstalled")] == order
    assert all(i.status == "uninstalled" for i in _by_name().values())


def test_modules_depending_on_each_other_uninstall_together(ctx, people):
    approved_release("yin", "1.0.0", deps={"yang": "^1.0.0"})
    approved_release("yang", "1.0.0", deps={"yin": "^1.0.0"})
    _install("yin")
    yin = _by_name()["yin"]
    with pytest.raises(Conflict) as exc:
        lifecycle.uninstall_installation(yin.id, actor=_user())
    assert exc.value.extra == {"dependents": ["yang"]}
    removed = lifecycle.uninstall_installation(yin.id, actor=_user(), cascade=True)
    assert sorted(i.module_name for i in removed) == ["yang", "yin"]
    assert {i.status for i in _by_name().values()} == {"uninstalled"}


# --- All or nothing when another request gets in between -------------------------------------


def _uninstall_as_admin(name):
    def action():
        inst = _by_name()[name]
        lifecycle.uninstall_installation(inst.id, actor=_user(ADMIN))

    return action


@pytest.mark.truncate
def test_a_cascade_that_fails_half_way_leaves_everything_as_it_was(app, ctx, people):
    """core ← alpha, core ← beta: the cascade uninstalls alpha, then finds beta uninstalled
    by another request meanwhile. alpha's uninstall and its event are rolled back too."""
    approved_release("core", "1.0.0")
    approved_release("alpha", "1.0.0", deps={"core": "^1.0.0"})
    approved_release("beta", "1.0.0", deps={"core": "^1.0.0"})
    _install("alpha")
    _install("beta")
    core = _by_name()["core"]
    before = lifecycle_state(app)
    with meanwhile(app, _uninstall_as_admin("beta")) as fired, pytest.raises(Conflict) as exc:
        lifecycle.uninstall_installation(core.id, actor=_user(), cascade=True)
    assert fired
    assert "beta changed meanwhile" in exc.value.message
    after = lifecycle_state(app)
    statuses = {row[2]: row[3] for row in after["installations"]}
    assert statuses == {"core": "installed", "alpha": "installed", "beta": "uninstalled"}
    # Only the other request's event was added: beta's uninstall, not part of the cascade.
    (event,) = _events("installation.uninstalled")
    assert (event.module, event.actor, event.data["cascade"]) == ("beta", ADMIN, False)
    assert after["events"] == [*before["events"], event.id]
    assert after["revisions"] == before["revisions"]
    # Asked again, the cascade now removes what is left.
    removed = lifecycle.uninstall_installation(core.id, actor=_user(), cascade=True)
    assert [i.module_name for i in removed] == ["alpha", "core"]


@pytest.mark.truncate
def test_an_edit_that_loses_a_race_between_reading_and_writing_is_409(app, ctx, people):
    approved_release("inventory", "1.0.0")
    inst = _install("inventory", config={"site": "a"})
    inst_id = inst.id  # the other thread must not touch this session's objects

    def edit_meanwhile():
        lifecycle.update_installation(inst_id, {"config": {"site": "b"}}, actor=_user(ADMIN))

    with meanwhile(app, edit_meanwhile) as fired, pytest.raises(Conflict) as exc:
        lifecycle.update_installation(
            inst.id, {"config": {"site": "c"}}, actor=_user(), expected_revision=1
        )
    assert fired and "changed meanwhile" in exc.value.message
    row = _by_name()["inventory"]
    assert (row.revision, row.config) == (2, {"site": "b"})
    assert [e.actor for e in _events("installation.updated")] == [ADMIN]
    revisions = db.session.execute(
        sa.select(InstallationRevision.revision, InstallationRevision.actor_id)
    ).all()
    assert sorted(revisions) == [(1, _user().id), (2, _user(ADMIN).id)]


@pytest.mark.truncate
def test_a_blind_edit_that_loses_a_race_applies_on_top_of_the_winner(app, ctx, people):
    """No expected revision: the change is read and checked again and applies as the next
    revision; 409 is only for a stale If-Match (api.md)."""
    approved_release("inventory", "1.0.0")
    inst = _install("inventory", config={"site": "a"})
    inst_id = inst.id

    def edit_meanwhile():
        lifecycle.update_installation(inst_id, {"config": {"site": "b"}}, actor=_user(ADMIN))

    with meanwhile(app, edit_meanwhile) as fired:
        edited = lifecycle.update_installation(inst.id, {"config": {"site": "c"}}, actor=_user())
    assert fired
    assert (edited.revision, edited.config) == (3, {"site": "c"})
    assert [e.actor for e in _events("installation.updated")] == [ADMIN, ACME_ADMIN]
    revisions = db.session.execute(sa.select(InstallationRevision.revision)).scalars().all()
    assert sorted(revisions) == [1, 2, 3]


@pytest.mark.truncate
def test_concurrent_blind_edits_all_apply_in_order(app, people):
    """Ten edits without a precondition at once: ten revisions, each with its event, no
    409 (reliability review D10: 16 of 20 were 409 on PostgreSQL)."""
    with app.app_context():
        approved_release("inventory", "1.0.0")
        inst_id = _install("inventory", config={"site": "start"}).id
        db.session.remove()
    barrier = threading.Barrier(10)
    outcomes: list = []

    def edit(i: int):
        with app.test_request_context():
            barrier.wait()
            try:
                lifecycle.update_installation(inst_id, {"config": {"site": f"s{i}"}}, actor=_user())
                outcomes.append("ok")
            except Exception as exc:  # reported below
                outcomes.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert outcomes == ["ok"] * 10
    with app.app_context():
        row = db.session.get(Installation, inst_id)
        assert row.revision == 11
        numbers = db.session.execute(
            sa.select(InstallationRevision.revision).where(
                InstallationRevision.installation_id == inst_id
            )
        ).scalars()
        assert sorted(numbers) == list(range(1, 12))
        assert len(_events("installation.updated")) == 10
        db.session.remove()


@pytest.mark.truncate
def test_an_edit_or_rollback_of_a_module_uninstalled_meanwhile_is_409(app, ctx, people):
    approved_release("inventory", "1.0.0")
    inst = _install("inventory", config={"site": "a"})
    lifecycle.update_installation(inst.id, {"config": {"site": "b"}}, actor=_user())
    before = lifecycle_state(app)
    with meanwhile(app, _uninstall_as_admin("inventory")), pytest.raises(Conflict):
        lifecycle.update_installation(inst.id, {"config": {"site": "c"}}, actor=_user())
    after = lifecycle_state(app)
    assert after["revisions"] == before["revisions"]
    assert after["events"] == [*before["events"], _events("installation.uninstalled")[-1].id]
    assert _by_name()["inventory"].status == "uninstalled"
    # Installed again, then uninstalled meanwhile during a rollback.
    _install("inventory")
    before = lifecycle_state(app)
    with meanwhile(app, _uninstall_as_admin("inventory")), pytest.raises(Conflict):
        lifecycle.rollback_installation(inst.id, 1, actor=_user())
    after = lifecycle_state(app)
    assert after["revisions"] == before["revisions"]
    assert [e for e in after["events"] if e not in before["events"]] == [
        _events("installation.uninstalled")[-1].id
    ]
    assert not _events("installation.rolled_back")


def test_a_rollback_based_on_a_stale_revision_is_409_and_changes_nothing(app, ctx, people):
    approved_release("inventory", "1.0.0")
    inst = _install("inventory", config={"site": "a"})
    lifecycle.update_installation(inst.id, {"config": {"site": "b"}}, actor=_user())
    lifecycle.update_installation(inst.id, {"config": {"site": "c"}}, actor=_user(ADMIN))
    before = lifecycle_state(app)
    with pytest.raises(Conflict) as exc:
        lifecycle.rollback_installation(inst.id, 1, actor=_user(), expected_revision=2)
    assert "revision 3, not 2" in exc.value.message
    assert lifecycle_state(app) == before
    assert not _events("installation.rolled_back")
    # The expected revision is checked before the target: a stale page is told so first.
    with pytest.raises(Conflict):
        lifecycle.rollback_installation(inst.id, 9, actor=_user(), expected_revision=2)
    rolled, restored = lifecycle.rollback_installation(
        inst.id, 1, actor=_user(), expected_revision=3
    )
    assert (rolled.revision, rolled.config, restored) == (4, {"site": "a"}, 1)
    # Without an expected revision, as before: applied at whatever revision it is.
    rolled, restored = lifecycle.rollback_installation(inst.id, 3, actor=_user())
    assert (rolled.revision, rolled.config, restored) == (5, {"site": "c"}, 3)


@pytest.mark.truncate
def test_a_rollback_at_its_expected_revision_that_loses_a_race_is_409(app, ctx, people):
    approved_release("inventory", "1.0.0")
    inst = _install("inventory", config={"site": "a"})
    lifecycle.update_installation(inst.id, {"config": {"site": "b"}}, actor=_user())
    inst_id = inst.id

    def edit_meanwhile():
        lifecycle.update_installation(inst_id, {"config": {"site": "z"}}, actor=_user(ADMIN))

    with meanwhile(app, edit_meanwhile) as fired, pytest.raises(Conflict) as exc:
        lifecycle.rollback_installation(inst.id, 1, actor=_user(), expected_revision=2)
    assert fired and "changed meanwhile" in exc.value.message
    row = _by_name()["inventory"]
    assert (row.revision, row.config) == (3, {"site": "z"})
    assert not _events("installation.rolled_back")


def test_reinstalling_with_a_masked_secret_keeps_the_stored_one(app, ctx, people):
    approved_release("mailer", "1.0.0", config_schema=SECRET_SCHEMA)
    inst = _install("mailer", config={"token": "t-1", "smtp": {"password": "p-1"}})
    lifecycle.uninstall_installation(inst.id, actor=_user())
    again = _install(
        "mailer", config={"token": MASK, "smtp": {"password": MASK}, "a/b": MASK, "plain": MASK}
    )
    assert again.id == inst.id and again.revision == 2
    assert _by_name()["mailer"].config == {
        "token": "t-1",
        "smtp": {"password": "p-1"},
        "plain": MASK,  # an ordinary field: just text
    }


def _install_purchasing_as_admin():
    _install("purchasing", actor=ADMIN, company="acme")


@pytest.mark.truncate
def test_an_upgrade_that_a_dependent_installed_meanwhile_forbids_is_409(app, ctx, people):
    """The upgrade was checked against the modules installed when it started; purchasing,
    which needs inventory ^1.0.0, is installed by another request before it writes."""
    approved_release("inventory", "1.0.0")
    approved_release("inventory", "2.0.0")
    approved_release("purchasing", "1.0.0", deps={"inventory": "^1.0.0"})
    inv = _install("inventory", version="=1.0.0")
    with meanwhile(app, _install_purchasing_as_admin) as fired, pytest.raises(Conflict) as exc:
        lifecycle.update_installation(inv.id, {"version": "2.0.0"}, actor=_user())
    assert fired
    # A blind edit reads under the company's lock, so it sees purchasing at once: refused
    # by the plan itself rather than by the check before writing; either way a 409.
    assert "purchasing 1.0.0 needs" in exc.value.message and "^1.0.0" in exc.value.message
    rows = _by_name()
    assert (rows["inventory"].release.version, rows["inventory"].revision) == ("1.0.0", 1)
    assert rows["purchasing"].status == "installed"
    assert not _events("installation.updated")
    # A rollback moving the release is checked the same way.
    approved_release("reporting", "1.0.0", deps={"inventory": "^2.0.0"})
    lifecycle.uninstall_installation(rows["purchasing"].id, actor=_user())
    lifecycle.update_installation(inv.id, {"version": "2.0.0"}, actor=_user())

    def install_reporting():
        _install("reporting", actor=ADMIN, company="acme")

    with meanwhile(app, install_reporting) as fired, pytest.raises(Conflict) as exc:
        lifecycle.rollback_installation(inv.id, actor=_user())
    assert fired and "reporting 1.0.0 needs inventory ^2.0.0, not 1.0.0" in exc.value.message
    assert _by_name()["inventory"].release.version == "2.0.0"
    assert not _events("installation.rolled_back")


@pytest.mark.truncate
def test_an_uninstall_that_a_dependent_installed_meanwhile_needs_is_409(app, ctx, people):
    approved_release("inventory", "1.0.0")
    approved_release("purchasing", "1.0.0", deps={"inventory": "^1.0.0"})
    inv = _install("inventory")
    with meanwhile(app, _install_purchasing_as_admin) as fired, pytest.raises(Conflict) as exc:
        lifecycle.uninstall_installation(inv.id, actor=_user(), cascade=True)
    assert fired
    assert "purchasing 1.0.0 needs inventory ^1.0.0, now absent" in exc.value.message
    rows = _by_name()
    assert {n: i.status for n, i in rows.items()} == {
        "inventory": "installed",
        "purchasing": "installed",
    }
    assert not _events("installation.uninstalled")


# --- Rollback ---------------------------------------------------------------------------------


def test_a_rollback_to_a_release_deleted_since_is_422_and_to_a_deprecated_one_works(
    app, ctx, people
):
    old = approved_release("inventory", "1.0.0")
    approved_release("inventory", "1.1.0")
    inst = _install("inventory", version="=1.0.0")
    lifecycle.update_installation(inst.id, {"version": "1.1.0"}, actor=_user())
    db.session.get(ModuleRelease, old.id).status = "deprecated"
    db.session.commit()
    done, restored = lifecycle.rollback_installation(inst.id, actor=_user())
    assert (done.release.version, done.revision, restored) == ("1.0.0", 3, 1)
    lifecycle.update_installation(inst.id, {"version": "1.1.0"}, actor=_user())
    db.session.get(ModuleRelease, old.id).status = "deleted"
    db.session.commit()
    before = lifecycle_state(app)
    with pytest.raises(ValidationFailed) as exc:
        lifecycle.rollback_installation(inst.id, 1, actor=_user())
    assert "inventory" in exc.value.message
    assert lifecycle_state(app) == before


def test_a_rollback_rechecks_the_endpoint_against_the_outbound_guard(app, ctx, people):
    """Revision 1's endpoint points at the cloud metadata address: data an older registry stored
    before the outbound guard refused such addresses. Restoring it would let the health
    checks call it; the rollback is refused like a PUT of that endpoint would be."""
    approved_release("notes", "1.0.0")
    inst = _install("notes", endpoint_url="http://notes.acme.internal/")
    lifecycle.update_installation(
        inst.id, {"endpoint_url": "http://notes2.acme.internal/"}, actor=_user()
    )
    db.session.execute(
        sa.update(InstallationRevision)
        .where(InstallationRevision.installation_id == inst.id, InstallationRevision.revision == 1)
        .values(endpoint_url="http://169.254.169.254/latest/")
    )
    db.session.commit()
    with pytest.raises(ValidationFailed):
        lifecycle.update_installation(
            inst.id, {"endpoint_url": "http://169.254.169.254/latest/"}, actor=_user()
        )
    before = lifecycle_state(app)
    with pytest.raises(ValidationFailed) as exc:
        lifecycle.rollback_installation(inst.id, 1, actor=_user())
    assert list(exc.value.fields) == ["/endpoint_url"]
    assert lifecycle_state(app) == before


def test_a_rollback_keeps_health_and_the_endpoint_of_its_revision(ctx, people):
    approved_release("notes", "1.0.0")
    inst = _install("notes")
    lifecycle.update_installation(
        inst.id, {"endpoint_url": "http://notes.acme.internal/", "config": {"a": 1}}, actor=_user()
    )
    lifecycle.record_heartbeat(inst.id, "healthy", None, actor=_user())
    done, restored = lifecycle.rollback_installation(inst.id, actor=_user())
    assert (done.endpoint_url, done.config, done.health_status) == (None, {}, "healthy")
    assert (done.revision, restored) == (3, 1)


# --- Heartbeats ---------------------------------------------------------------------------------


def test_heartbeats_are_for_the_owning_companys_tokens_only(ctx, people):
    approved_release("notes", "1.0.0")
    inst = _install("notes")
    with pytest.raises(PermissionDenied):
        lifecycle.record_heartbeat(inst.id, "healthy", None, actor=_user(ADMIN))
    for email in ("admin@globex.test", "dev@globex.test"):
        with pytest.raises(NotFound) as other:
            lifecycle.record_heartbeat(inst.id, "healthy", None, actor=_user(email))
        with pytest.raises(NotFound) as missing:
            lifecycle.record_heartbeat(inst.id + 99, "healthy", None, actor=_user(email))
        assert other.value.message == missing.value.message
    lifecycle.record_heartbeat(inst.id, "degraded", "x" * 2000, actor=_user("dev@acme.test"))
    row = _by_name()["notes"]
    assert (row.health_status, len(row.health_message)) == ("degraded", 500)
    (event,) = _events("installation.health_changed")
    assert event.actor == "dev@acme.test" and len(event.data["message"]) == 500


HEARTBEATS = 6


@pytest.mark.truncate
def test_many_heartbeats_at_once_record_one_change_of_health(app, people):
    """Runtimes (several replicas) report "healthy" at the same moment: the change from
    unknown is one history row and one event, not one per heartbeat."""
    with app.app_context():
        approved_release("notes", "1.0.0")
        inst_id = _install("notes").id
        db.session.remove()
    headers = [bearer(app, ACME_ADMIN) for _ in range(HEARTBEATS)]
    for status in ("healthy", "unhealthy"):
        start = threading.Barrier(HEARTBEATS)
        results: list = [None] * HEARTBEATS

        def beat(i: int, status=status, start=start, results=results) -> None:
            client = app.test_client()
            try:
                start.wait(timeout=30)
                resp = client.post(
                    f"/api/v1/installations/{inst_id}/heartbeat",
                    json={"status": status},
                    headers=headers[i],
                )
                results[i] = resp.status_code
            except Exception as exc:
                results[i] = repr(exc)

        threads = [threading.Thread(target=beat, args=(i,)) for i in range(HEARTBEATS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert results == [204] * HEARTBEATS
    with app.app_context():
        history = db.session.execute(
            sa.select(HealthChange.from_status, HealthChange.to_status).order_by(HealthChange.id)
        ).all()
        events = [e.data for e in _events("installation.health_changed")]
        db.session.remove()
    assert history == [("unknown", "healthy"), ("healthy", "unhealthy")]
    assert [(d["from"], d["to"]) for d in events] == history


# --- Revisions --------------------------------------------------------------------------------


def test_revisions_store_secrets_as_given_and_list_them_masked(ctx, people):
    approved_release("vault", "1.0.0", config_schema=SECRET_SCHEMA)
    inst = _install("vault", config={"token": "tok-1", "plain": "p"})
    lifecycle.update_installation(inst.id, {"config": {"token": MASK, "plain": "q"}}, actor=_user())
    revisions = lifecycle.list_revisions(inst.id, actor=_user())
    assert [r.revision for r in revisions] == [2, 1]
    assert [r.config for r in revisions] == [
        {"token": "tok-1", "plain": "q"},
        {"token": "tok-1", "plain": "p"},
    ]
    shown = revision_changes(inst.id, actor=_user())
    assert [r.config for r in shown] == [
        {"token": MASK, "plain": "q"},
        {"token": MASK, "plain": "p"},
    ]
    for event in db.session.execute(sa.select(Event)).scalars():
        assert "tok-1" not in json.dumps(event.data)
    with pytest.raises(NotFound):
        lifecycle.list_revisions(inst.id, actor=_user("admin@globex.test"))


def test_revision_changes_show_a_secret_as_changed_and_never_its_value(ctx, people):
    approved_release("vault", "1.0.0", config_schema=SECRET_SCHEMA)
    inst = _install("vault", config={"token": "tok-1", "plain": "p"})
    lifecycle.update_installation(
        inst.id, {"config": {"token": "tok-2", "plain": "q"}}, actor=_user()
    )
    lifecycle.update_installation(
        inst.id, {"endpoint_url": "http://vault.acme.internal/"}, actor=_user()
    )
    newest, changed, first = revision_changes(inst.id, actor=_user())
    assert [(c.field, c.kind, c.before, c.after) for c in newest.changes] == [
        ("endpoint_url", "added", None, "http://vault.acme.internal/")
    ]
    assert [(c.what, c.kind, c.before, c.after, c.secret) for c in changed.changes] == [
        ("/plain", "changed", "p", "q", False),
        ("/token", "changed", None, None, True),
    ]
    assert first.first and [(c.what, c.kind, c.secret) for c in first.changes] == [
        ("/plain", "added", False),
        ("/token", "added", True),
    ]
    assert "tok-" not in repr([newest, changed, first])
    with pytest.raises(NotFound):
        revision_changes(inst.id, actor=_user("admin@globex.test"))


def test_upgrade_available_is_the_newest_version_reachable_with_nothing_else_changing(ctx, people):
    approved_release("inventory", "1.0.0")
    approved_release("inventory", "1.5.0")
    approved_release("inventory", "2.0.0")
    approved_release("purchasing", "1.0.0", deps={"inventory": "^1.0.0"})
    approved_release("notes", "1.0.0")
    inventory = _install("inventory", version="=1.0.0")
    notes = _install("notes")
    assert upgrades.upgrade_available(inventory) == "2.0.0"
    _install("purchasing")  # needs inventory ^1.0.0: 2.0.0 would break it
    assert upgrades.upgrades_available([inventory, notes]) == {inventory.id: "1.5.0"}
    choices = upgrades.version_choices(inventory)
    assert [(c.version, c.installed) for c in choices] == [
        ("2.0.0", False),
        ("1.5.0", False),
        ("1.0.0", True),
    ]


# --- Races on PostgreSQL: whoever commits first, the dependency rule holds ------------------

RACE_ROUNDS = 20


class _AtCommit:
    """Holds each racing thread just before its unit of work commits, until the other thread
    has got that far too, has finished, or waits for a lock this one holds (waiting longer
    could then only deadlock). Without a lock taken before the final checks both threads have
    then checked everything before either commits, the widest window there is: an unguarded
    path loses every round, not once in a while. Guarded, a round costs no waiting."""

    def __init__(self, parties: int, timeout: float = 5.0):
        self.parties, self.timeout = parties, timeout
        self.cond = threading.Condition()
        self.settled: set[int] = set()  # threads at their commit, or done
        self.pids: dict[int, int] = {}  # thread → its PostgreSQL backend
        self.local = threading.local()

    def enter(self, i: int) -> None:
        """In racing thread i, before its operation (the session keeps this connection)."""
        self.local.index = i
        self.pids[i] = db.session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()

    def leave(self, i: int) -> None:
        with self.cond:
            self.settled.add(i)
            self.cond.notify_all()

    def before_commit(self, session) -> None:
        i = getattr(self.local, "index", None)
        if i is None or not WRITE_INTENT.get():  # only a racing thread's unit of work
            return
        self.local.index = None
        self.leave(i)
        others = [pid for j, pid in self.pids.items() if j != i]
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with self.cond:
                if len(self.settled) == self.parties:
                    return
                self.cond.wait(0.01)
            blocked = session.connection().exec_driver_sql(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND pid = ANY(%(p)s))",
                {"p": others},
            )
            if blocked.scalar():
                return


def _race(app, ops) -> list:
    """Run the operations from one thread each, released together and held at their commits
    (see _AtCommit). Returns "ok" or the exception raised, per operation."""
    at_commit, start = _AtCommit(len(ops)), threading.Barrier(len(ops))
    outcomes: list = [None] * len(ops)

    def run(i: int) -> None:
        with app.app_context():
            try:
                at_commit.enter(i)
                start.wait(timeout=30)
                ops[i]()
                outcomes[i] = "ok"
            except Exception as exc:
                outcomes[i] = exc
            finally:
                at_commit.leave(i)
                db.session.remove()

    sa.event.listen(Session, "before_commit", at_commit.before_commit)
    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(ops))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a racing operation did not finish"
    finally:
        sa.event.remove(Session, "before_commit", at_commit.before_commit)
    return outcomes


def _unmet_dependencies(company="acme") -> list[str]:
    """Required module dependencies of the company's active installations that its active
    installations do not meet (checked here, not by the service under test)."""
    active = {n: i for n, i in _by_name(company).items() if i.status == "installed"}
    unmet = []
    for name, inst in active.items():
        for dep in (inst.release.manifest or {}).get("dependencies") or []:
            if dep.get("type", "module") != "module" or dep.get("optional"):
                continue
            constraint, have = dep.get("version") or "*", active.get(dep["name"])
            if have is None or not Constraint.parse(constraint).allows(
                Version.parse(have.release.version)
            ):
                found = have.release.version if have else "nothing"
                unmet.append(f"{name} needs {dep['name']} {constraint}, has {found}")
    return unmet


def _install_op(module, install_dependencies=False):
    return lambda: _install(
        module, actor=ADMIN, company="acme", install_dependencies=install_dependencies
    )


def _uninstall_op(name, cascade=False):
    return lambda: lifecycle.uninstall_installation(
        _by_name()[name].id, actor=_user(), cascade=cascade
    )


def _upgrade_op(name, version):
    return lambda: lifecycle.update_installation(
        _by_name()[name].id, {"version": version}, actor=_user()
    )


def _rollback_op(name):
    return lambda: lifecycle.rollback_installation(_by_name()[name].id, actor=_user())


def _inventory_1():
    _install("inventory", version="=1.0.0")


def _inventory_2_after_1():
    inv = _install("inventory", version="=1.0.0")
    lifecycle.update_installation(inv.id, {"version": "2.0.0"}, actor=_user())


CREATED, UPDATED = "installation.created", "installation.updated"
UNINSTALLED, ROLLED_BACK = "installation.uninstalled", "installation.rolled_back"

# name: (the state each round starts from, the two operations, what each one adds when it
# wins (events, number of revisions), what each may raise when it loses). The loser is
# refused as a request arriving just after the winner would be: 409, except an install
# that makes its plan after the winner committed, which is told what it now lacks (422).
RACES = {
    # An install keeping inventory (purchasing needs ^1.0.0) against inventory's uninstall.
    "install-keeping-a-dependency/uninstall": (
        _inventory_1,
        [_install_op("purchasing"), _uninstall_op("inventory")],
        [([(CREATED, "purchasing")], 1), ([(UNINSTALLED, "inventory")], 0)],
        [(Conflict, ValidationFailed), (Conflict,)],
    ),
    # The same with cascade: an uninstall cascades to the dependents it knows of.
    "install-keeping-a-dependency/uninstall-with-cascade": (
        _inventory_1,
        [_install_op("purchasing"), _uninstall_op("inventory", cascade=True)],
        [([(CREATED, "purchasing")], 1), ([(UNINSTALLED, "inventory")], 0)],
        [(Conflict, ValidationFailed), (Conflict,)],
    ),
    # An install relying on inventory 1.x against inventory's upgrade to 2.0.0.
    "install-keeping-a-dependency/upgrade": (
        _inventory_1,
        [_install_op("purchasing"), _upgrade_op("inventory", "2.0.0")],
        [([(CREATED, "purchasing")], 1), ([(UPDATED, "inventory")], 1)],
        [(Conflict, ValidationFailed), (Conflict,)],
    ),
    # An install relying on inventory 2.x against a rollback of inventory to 1.0.0.
    "install-keeping-a-dependency/rollback": (
        _inventory_2_after_1,
        [_install_op("reporting"), _rollback_op("inventory")],
        [([(CREATED, "reporting")], 1), ([(ROLLED_BACK, "inventory")], 1)],
        [(Conflict, ValidationFailed), (Conflict,)],
    ),
    # Two installs: one keeps inventory 1.0.0, the other's plan upgrades it to 2.0.0.
    "install-keeping-a-dependency/install-upgrading-it": (
        _inventory_1,
        [_install_op("purchasing"), _install_op("reporting", install_dependencies=True)],
        [([(CREATED, "purchasing")], 1), ([(UPDATED, "inventory"), (CREATED, "reporting")], 2)],
        [(Conflict, ValidationFailed), (Conflict, ValidationFailed)],
    ),
}


@pytest.mark.truncate
@pytest.mark.postgres
@pytest.mark.parametrize("race", list(RACES))
def test_racing_changes_never_leave_a_module_without_its_dependency(
    app, people, postgres_url, race
):
    """Each round starts afresh and runs both operations at once: exactly one wins, the
    other is refused as it would be on its own and leaves nothing behind, and every active
    installation still has what it requires. (SQLite serializes these units of work with
    BEGIN IMMEDIATE; on PostgreSQL the service must do it itself.)"""
    setup, ops, wins, losses = RACES[race]
    with app.app_context():
        approved_release("inventory", "1.0.0")
        approved_release("inventory", "2.0.0")
        approved_release("purchasing", "1.0.0", deps={"inventory": "^1.0.0"})
        approved_release("reporting", "1.0.0", deps={"inventory": "^2.0.0"})
        db.session.remove()
    for round_ in range(RACE_ROUNDS):
        with app.app_context():
            for model in (Event, HealthChange, InstallationRevision, Installation):
                db.session.execute(sa.delete(model))
            db.session.commit()
            setup()
            before = lifecycle_state(app)
            db.session.remove()
        outcomes = _race(app, ops)
        with app.app_context():
            after = lifecycle_state(app)
            added = [
                (e.type, e.module)
                for e in db.session.execute(
                    sa.select(Event).where(Event.id.not_in(before["events"])).order_by(Event.id)
                ).scalars()
            ]
            revisions = len(after["revisions"]) - len(before["revisions"])
            unmet = _unmet_dependencies()
            db.session.remove()
        where = f"round {round_}: {outcomes}"
        assert unmet == [], where
        for outcome in outcomes:
            assert outcome == "ok" or isinstance(outcome, (Conflict, ValidationFailed)), where
        if outcomes == ["ok", "ok"]:
            # Only when the uninstall read its dependents after the install committed:
            # the cascade then removed purchasing too. Nothing conflicted.
            assert race.endswith("with-cascade"), where
            assert added == [(CREATED, "purchasing"), (UNINSTALLED, "purchasing")] + [
                (UNINSTALLED, "inventory")
            ], where
            continue
        (winner,) = [i for i, outcome in enumerate(outcomes) if outcome == "ok"]
        loser = 1 - winner
        assert isinstance(outcomes[loser], losses[loser]), where
        assert (added, revisions) == wins[winner], where
