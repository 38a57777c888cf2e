"""The install service (install plan, installation) below the API: whole plans in one
transaction, events and revisions per module, configurations of dependencies, plans that
went stale while being applied, and the resolver's query count. (Resolution rules
themselves: test_resolver.py.)"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Event, Installation, InstallationRevision
from portal.services.accounts import users
from portal.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from portal.services.installations.installs import (
    InstallRequest,
    get_installation,
    install_module,
    list_installations,
    plan_installation,
)
from portal.services.installations.resolver import resolve
from portal.services.review.decisions import change_status
from tests.helpers import ACME_ADMIN, approved_release, installation_state
from tests.helpers import meanwhile as helpers_meanwhile


@pytest.fixture
def ctx(app):
    """A request context, as the API runs the service in: on SQLite, reads then begin
    deferred and only a unit of work takes the write lock (outside requests every
    transaction takes it, which would keep the other thread of `meanwhile` waiting)."""
    with app.test_request_context():
        yield
        db.session.remove()


def _user(email=ACME_ADMIN):
    return users.user_by_email(email)


def _install(module, version="*", actor=ACME_ADMIN, **kw):
    kw.setdefault("install_dependencies", True)
    return install_module(InstallRequest(module=module, version=version, **kw), actor=_user(actor))


def _installed():
    rows = db.session.execute(sa.select(Installation).order_by(Installation.module_name))
    return {i.module_name: (i.release.version, i.status, i.revision) for i in rows.scalars()}


def _event_kinds():
    rows = db.session.execute(
        sa.select(Event.type, Event.module, Event.installation_id).order_by(Event.id)
    ).all()
    return [tuple(r) for r in rows if r.type.startswith("installation.")]


def meanwhile(app, action):
    """helpers.meanwhile at the moment install_module has made its plan and is about to
    apply it: just before it looks for earlier, uninstalled records of the plan's modules."""
    return helpers_meanwhile(
        app,
        action,
        at=lambda statement, params: (
            "FROM installations" in statement and "uninstalled" in repr(params)
        ),
    )


# --- One transaction per plan -------------------------------------------------------------


def test_a_chain_installs_dependencies_first_each_at_revision_one_with_its_event(ctx, people):
    approved_release("core", "1.0.0")
    approved_release("ledger", "2.0.0", deps={"core": "^1.0.0"})
    approved_release("billing", "1.1.0", deps={"ledger": "^2.0.0", "core": "^1.0.0"})
    main, deps = _install("billing")
    assert main.module_name == "billing"
    assert [d.module_name for d in deps] == ["core", "ledger"]
    assert _installed() == {
        "billing": ("1.1.0", "installed", 1),
        "core": ("1.0.0", "installed", 1),
        "ledger": ("2.0.0", "installed", 1),
    }
    ids = {i.module_name: i.id for i in [main, *deps]}
    assert _event_kinds() == [
        ("installation.created", "core", ids["core"]),
        ("installation.created", "ledger", ids["ledger"]),
        ("installation.created", "billing", ids["billing"]),
    ]
    revisions = db.session.execute(
        sa.select(InstallationRevision).order_by(InstallationRevision.installation_id)
    ).scalars()
    assert [(r.installation_id, r.revision, r.reason, r.version) for r in revisions] == sorted(
        [
            (ids["core"], 1, "install", "1.0.0"),
            (ids["ledger"], 1, "install", "2.0.0"),
            (ids["billing"], 1, "install", "1.1.0"),
        ]
    )
    events = db.session.execute(sa.select(Event)).scalars().all()
    created = [e for e in events if e.type == "installation.created"]
    assert all(e.company == "acme" and e.actor == ACME_ADMIN for e in created)
    assert all(e.data == {"revision": 1, "config": {}} for e in created)


def test_a_dependencys_secrets_are_masked_in_its_event_and_stored_as_given(ctx, people):
    schema = {
        "type": "object",
        "properties": {
            "token": {"type": "string", "writeOnly": True},
            "dsn": {"type": "string", "format": "password"},
            "region": {"type": "string", "default": "eu"},
        },
    }
    approved_release("vault", "1.0.0", config_schema=schema)
    approved_release("payroll", "1.0.0", deps={"vault": "^1.0.0"})
    config = {"token": "tok-123456", "dsn": "postgres://u:p@db/x"}
    main, (dep,) = _install("payroll", dependency_configs={"vault": config})
    assert dep.config == {**config, "region": "eu"}
    event = db.session.execute(sa.select(Event).where(Event.installation_id == dep.id)).scalar_one()
    assert event.data["config"] == {"token": "********", "dsn": "********", "region": "eu"}


def test_an_upgrade_inside_an_install_is_part_of_the_same_transaction(ctx, people):
    approved_release("inventory", "1.0.0")
    _install("inventory")
    approved_release("inventory", "2.1.0")
    approved_release("purchasing", "1.0.0", deps={"inventory": "^2.0.0"})
    with pytest.raises(ValidationFailed) as exc:
        _install("purchasing", install_dependencies=False)
    assert "inventory 2.1.0 (upgrade)" in exc.value.message
    assert _installed() == {"inventory": ("1.0.0", "installed", 1)}

    main, (dep,) = _install("purchasing")
    assert _installed() == {
        "inventory": ("2.1.0", "installed", 2),
        "purchasing": ("1.0.0", "installed", 1),
    }
    assert [k[:2] for k in _event_kinds()] == [
        ("installation.created", "inventory"),
        ("installation.updated", "inventory"),
        ("installation.created", "purchasing"),
    ]
    updated = db.session.execute(
        sa.select(Event).where(Event.type == "installation.updated")
    ).scalar_one()
    assert updated.data["from_version"] == "1.0.0" and updated.data["to_version"] == "2.1.0"
    revisions = db.session.execute(
        sa.select(InstallationRevision.revision, InstallationRevision.reason).where(
            InstallationRevision.installation_id == dep.id
        )
    ).all()
    assert sorted(revisions) == [(1, "install"), (2, "upgrade")]


def test_an_upgrade_whose_kept_configuration_no_longer_validates_changes_nothing(app, ctx, people):
    approved_release("inventory", "1.0.0")
    _install("inventory", config={"site": "north"})
    approved_release(
        "inventory",
        "2.0.0",
        config_schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {"warehouse": {"type": "string"}},
        },
    )
    approved_release("purchasing", "1.0.0", deps={"inventory": "^2.0.0"})
    before = installation_state(app)
    with pytest.raises(ValidationFailed) as exc:
        _install("purchasing")
    assert "dependency inventory" in exc.value.message
    assert exc.value.fields == {"/site": exc.value.fields["/site"]}
    assert installation_state(app) == before


def test_a_deprecated_release_already_installed_is_kept(ctx, people):
    old = approved_release("inventory", "1.0.0")
    _install("inventory")
    approved_release("inventory", "1.1.0")
    change_status(old.id, "deprecated", actor=_user("admin@example.com"))
    approved_release("purchasing", "1.0.0", deps={"inventory": "^1.0.0"})
    _company, plan = plan_installation(InstallRequest(module="purchasing"), actor=_user())
    assert [(s.module, s.version, s.action) for s in plan.steps] == [
        ("inventory", "1.0.0", "keep"),
        ("purchasing", "1.0.0", "install"),
    ]


def test_deleted_and_foreign_private_releases_are_never_dependencies(ctx, people):
    gone = approved_release("ledger", "1.1.0")
    approved_release("ledger", "1.0.0")
    db.session.get(type(gone), gone.id).status = "deleted"
    db.session.commit()
    approved_release("vault", "1.0.0", visibility="private", actor_email="dev@globex.test")
    approved_release("billing", "1.0.0", deps={"ledger": "^1.0.0"})
    approved_release("payroll", "1.0.0", deps={"vault": "*"})
    _company, plan = plan_installation(InstallRequest(module="billing"), actor=_user())
    assert [(s.module, s.version) for s in plan.steps] == [
        ("ledger", "1.0.0"),
        ("billing", "1.0.0"),
    ]
    with pytest.raises(ValidationFailed) as exc:
        plan_installation(InstallRequest(module="payroll"), actor=_user())
    assert "no release of vault is available to acme" in exc.value.message
    # globex, the publisher, may use its own private module as a dependency.
    _company, plan = plan_installation(
        InstallRequest(module="payroll"), actor=_user("admin@globex.test")
    )
    assert [s.module for s in plan.steps] == ["vault", "payroll"]


def test_installed_modules_outside_the_requests_reach_stay_out_of_the_plan(ctx, people):
    """Only constraints on names the plan may change bind it: a drifted, unrelated
    installation (inventory moved past what reporting allows) neither blocks nor joins a
    plan for notes."""
    old = approved_release("inventory", "1.0.0")
    new = approved_release("inventory", "2.0.0")
    approved_release("reporting", "1.0.0", deps={"inventory": "^1.0.0"})
    approved_release("notes", "1.0.0")
    _install("reporting")
    db.session.execute(
        sa.update(Installation).where(Installation.module_id == old.id).values(module_id=new.id)
    )
    db.session.commit()
    _company, plan = plan_installation(InstallRequest(module="notes"), actor=_user())
    assert [(s.module, s.action) for s in plan.steps] == [("notes", "install")]
    main, deps = _install("notes", install_dependencies=False)
    assert main.module_name == "notes" and deps == []


# --- Plans that go stale while being applied ------------------------------------------------


def _uninstall_inventory():
    inst = db.session.execute(
        sa.select(Installation).where(Installation.module_name == "inventory")
    ).scalar_one()
    inst.status = "uninstalled"
    db.session.commit()


def _install_inventory_elsewhere():
    _install("inventory", actor="admin@example.com", company="acme")


@pytest.mark.truncate
def test_a_dependency_the_plan_keeps_but_another_request_removes_meanwhile_is_409(app, ctx, people):
    """Without a re-check, purchasing would be installed without the inventory it needs."""
    approved_release("inventory", "1.4.0")
    approved_release("purchasing", "1.2.0", deps={"inventory": "^1.0.0"})
    _install("inventory")
    before = installation_state(app)
    with meanwhile(app, _uninstall_inventory) as fired, pytest.raises(Conflict) as exc:
        _install("purchasing")
    assert fired
    assert "inventory changed for acme meanwhile" in exc.value.message
    (inventory,) = before["installations"]
    assert installation_state(app) == {
        **before,
        "installations": [(*inventory[:2], "uninstalled", *inventory[3:])],
    }


@pytest.mark.truncate
def test_a_dependency_the_plan_upgrades_but_another_request_removes_meanwhile_is_409(
    app, ctx, people
):
    """Without a re-check, applying the upgrade step found no installation: a 500."""
    approved_release("inventory", "1.0.0")
    _install("inventory")
    approved_release("inventory", "2.0.0")
    approved_release("reporting", "1.0.0", deps={"inventory": "^2.0.0"})
    with meanwhile(app, _uninstall_inventory) as fired, pytest.raises(Conflict):
        _install("reporting")
    assert fired
    assert _installed() == {"inventory": ("1.0.0", "uninstalled", 1)}
    assert [k[:2] for k in _event_kinds()] == [("installation.created", "inventory")]


@pytest.mark.truncate
def test_a_dependency_installed_by_another_request_meanwhile_is_409_naming_it(app, ctx, people):
    approved_release("inventory", "1.4.0")
    approved_release("purchasing", "1.2.0", deps={"inventory": "^1.0.0"})
    with meanwhile(app, _install_inventory_elsewhere) as fired, pytest.raises(Conflict) as exc:
        _install("purchasing")
    assert fired
    assert "inventory" in exc.value.message and "meanwhile" in exc.value.message
    assert _installed() == {"inventory": ("1.4.0", "installed", 1)}
    assert [k[:2] for k in _event_kinds()] == [("installation.created", "inventory")]


# --- Reading ----------------------------------------------------------------------------------


def test_reading_installations_is_for_the_owner_companys_admins_and_platform_admins(ctx, people):
    approved_release("notes", "1.0.0")
    inst, _ = _install("notes")
    assert get_installation(inst.id, actor=_user()).id == inst.id
    assert get_installation(inst.id, actor=_user("admin@example.com")).id == inst.id
    for email in ("admin@globex.test", "dev@acme.test", "dev@globex.test"):
        with pytest.raises(NotFound) as exc:
            get_installation(inst.id, actor=_user(email))
        with pytest.raises(NotFound) as missing:
            get_installation(inst.id + 99, actor=_user(email))
        assert exc.value.message == missing.value.message
    with pytest.raises(PermissionDenied):
        list_installations(actor=_user("dev@acme.test"), page=1, per_page=20)
    with pytest.raises(NotFound):
        list_installations(actor=_user("admin@globex.test"), page=1, per_page=20, company="acme")
    page = list_installations(actor=_user("admin@globex.test"), page=1, per_page=20)
    assert page.items == [] and page.total == 0


# --- The resolver's queries -------------------------------------------------------------------


def _statements_for_plan(module: str) -> int:
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    company = _user().company
    db.session.expire_all()
    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        resolve(company, module, "*")
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
    return len(statements)


def _publish_tree(prefix: str, *, width: int, depth: int, versions: int) -> str:
    """`prefix-root` needs `width` names, each the head of a chain `depth - 1` long; every
    name has `versions` releases (1.0.0, 1.1.0, ...), all with the same dependencies."""
    root = f"{prefix}-root"
    chains = [[f"{prefix}-{w}-{level}" for level in range(depth - 1)] for w in range(width)]
    for chain in chains:
        for i, name in enumerate(chain):
            deps = {chain[i + 1]: ">=1.0.0"} if i + 1 < len(chain) else None
            for minor in range(versions):
                approved_release(name, f"1.{minor}.0", deps=deps)
    for minor in range(versions):
        approved_release(root, f"1.{minor}.0", deps={chain[0]: "^1.0.0" for chain in chains})
    return root


def test_the_resolvers_statements_are_one_per_dependency_level(ctx, people):
    """Neither more versions per name nor more names per level add statements: the whole
    closure is loaded a level at a time, whatever the search then does."""
    chain_few = _statements_for_plan(_publish_tree("few", width=1, depth=4, versions=2))
    chain_many = _statements_for_plan(_publish_tree("many", width=1, depth=4, versions=12))
    wide = _statements_for_plan(_publish_tree("wide", width=6, depth=4, versions=3))
    assert chain_few == chain_many == wide
    assert wide <= 6  # installed modules, then one per level (4), and nothing else


def test_releases_with_the_same_dependencies_are_decided_together(ctx, people):
    """The releases of a name that share their dependencies are one choice for the search;
    a requirement allowing only some of them narrows it, and the highest one left wins."""
    for minor in range(4):
        approved_release("lib", f"1.{minor}.0", deps={"base": "^1.0.0"})
    approved_release("base", "1.0.0")
    approved_release("plugin", "1.0.0", deps={"lib": "<1.2.0"})
    approved_release("app", "1.0.0", deps={"lib": "^1.0.0", "plugin": "*"})
    _company, plan = plan_installation(InstallRequest(module="app"), actor=_user())
    assert [(s.module, s.version) for s in plan.steps] == [
        ("base", "1.0.0"),
        ("lib", "1.1.0"),
        ("plugin", "1.0.0"),
        ("app", "1.0.0"),
    ]


def test_a_conflict_between_many_releases_is_explained_once_per_side(ctx, people):
    for minor in range(12):
        approved_release("leaf", f"{minor // 4 + 1}.{minor % 4}.0")
        approved_release("other", f"1.{minor}.0", deps={"leaf": "<2.0.0"})
        approved_release("middle", f"1.{minor}.0", deps={"leaf": "^3.0.0", "other": "^1.0.0"})
    with pytest.raises(ValidationFailed) as exc:
        plan_installation(InstallRequest(module="middle"), actor=_user())
    (reason,) = [e["message"] for e in exc.value.errors]
    assert reason.count("needs leaf ^3.0.0") == 1 and reason.count("needs leaf <2.0.0") == 1
    assert "middle 1.11.0 (or 11 other releases with the same dependencies)" in reason
    assert "other 1.11.0 (or 11 other releases with the same dependencies)" in reason


def test_a_dead_end_is_explained_down_to_its_cause(ctx, people):
    approved_release("core", "1.0.0")
    approved_release("addon", "1.0.0", deps={"core": "^3.0.0"})
    approved_release("suite", "1.0.0", deps={"addon": "*"})
    approved_release("billing", "1.0.0", deps={"ledger": "^1.0.0"})
    with pytest.raises(ValidationFailed) as exc:
        plan_installation(InstallRequest(module="suite"), actor=_user())
    assert exc.value.errors[0]["message"] == (
        "the request needs suite *, but suite 1.0.0 needs addon *, and addon 1.0.0 needs "
        "core ^3.0.0, and no release of core satisfies ^3.0.0 (available: 1.0.0)."
    )
    with pytest.raises(ValidationFailed) as exc:
        plan_installation(InstallRequest(module="billing"), actor=_user())
    assert exc.value.errors[0]["message"] == (
        "the request needs billing *, but billing 1.0.0 needs ledger ^1.0.0, and no release "
        "of ledger is available to acme."
    )
