"""Reads the pages use, kept in the services: the health badges the control room polls,
the configurations a reinstall starts from, and the platform admin's menu of companies."""

from __future__ import annotations

import pytest

from portal.extensions import db
from portal.models import Installation
from portal.services.accounts import users
from portal.services.accounts.access import list_companies
from portal.services.errors import NotFound, PermissionDenied
from portal.services.health.records import health_badges, record_health
from portal.services.installations import lifecycle
from portal.services.installations.installs import InstallRequest, install_module
from portal.services.installations.reinstall import previous_configs
from portal.services.uow import unit_of_work
from tests.helpers import approved_release, captured_statements

ADMIN, ACME_ADMIN, GLOBEX_ADMIN = "admin@example.com", "admin@acme.test", "admin@globex.test"
SCHEMA = {"type": "object", "properties": {"currency": {"type": "string"}}}


@pytest.fixture
def installed(app, people):
    """acme: ledger (EUR, then uninstalled), notes and billing installed; globex: notes.
    Returns the installations' ids by "company/module"."""
    with app.app_context():
        for name in ("ledger", "notes", "billing"):
            approved_release(name, "1.0.0", config_schema=SCHEMA)
        acme, globex = users.user_by_email(ACME_ADMIN), users.user_by_email(GLOBEX_ADMIN)
        ids = {}
        for user, slug, name in (
            (acme, "acme", "ledger"),
            (acme, "acme", "notes"),
            (acme, "acme", "billing"),
            (globex, "globex", "notes"),
        ):
            config = {"currency": "EUR"}
            ids[f"{slug}/{name}"] = install_module(
                InstallRequest(module=name, config=config), actor=user
            )[0].id
        lifecycle.uninstall_installation(ids["acme/ledger"], actor=acme)
        with unit_of_work():
            notes = db.session.get(Installation, ids["acme/notes"])
            record_health(notes, "degraded", "slow", 2100, "check")
        db.session.remove()
    return ids


def test_health_badges_are_the_companys_installed_modules_in_one_query(app, installed):
    with app.app_context():
        acme = users.user_by_email(ACME_ADMIN)
        with captured_statements(app) as statements:
            rows = health_badges("acme", actor=acme)
        assert len([s for s, _ in statements if s.lstrip().startswith("SELECT")]) == 1
        assert [(r.id, r.health_status, r.health_message) for r in rows] == [
            (installed["acme/notes"], "degraded", "slow"),
            (installed["acme/billing"], "unknown", None),
        ]
        admin_rows = health_badges("globex", actor=users.user_by_email(ADMIN))
        assert [r.id for r in admin_rows] == [installed["globex/notes"]]
        db.session.remove()


@pytest.mark.parametrize("slug", ["globex", "no-such-company"])
def test_health_badges_of_a_company_one_may_not_see_are_not_found(app, installed, slug):
    with app.app_context(), pytest.raises(NotFound):
        health_badges(slug, actor=users.user_by_email(ACME_ADMIN))


def test_previous_configs_are_those_of_uninstalled_modules_of_that_company(app, installed):
    with app.app_context():
        acme = users.user_by_email(ACME_ADMIN).company_id
        globex = users.user_by_email(GLOBEX_ADMIN).company_id
        assert previous_configs(acme, ["ledger", "notes", "absent"]) == {
            "ledger": {"currency": "EUR"}
        }
        assert previous_configs(acme, []) == {}
        assert previous_configs(globex, ["ledger", "notes"]) == {}
        db.session.remove()


def test_only_platform_admins_list_every_company(app, people):
    with app.app_context():
        admin = users.user_by_email(ADMIN)
        assert [c.slug for c in list_companies(actor=admin)] == ["acme", "globex"]
        with pytest.raises(PermissionDenied):
            list_companies(actor=users.user_by_email(ACME_ADMIN))
        db.session.remove()
