"""The dry run of a version change (services.version_change): the plan for `=version`, or
why there is none (409 a dependent would break, 422 otherwise), checked as
update_installation checks it, and nothing changed by asking."""

from __future__ import annotations

import pytest

from portal.extensions import db
from portal.services.accounts import users
from portal.services.errors import Conflict, NotFound
from portal.services.installations import lifecycle
from portal.services.installations.installs import InstallRequest, install_module
from portal.services.installations.version_change import preview_version_change
from tests.helpers import approved_release, lifecycle_state

ACME_ADMIN, GLOBEX_ADMIN = "admin@acme.test", "admin@globex.test"
SCHEMA = {
    "type": "object",
    "properties": {"currency": {"type": "string", "enum": ["EUR", "USD"]}},
}
STRICT_SCHEMA = {  # 3.0.0: the currency must be one ledger 1.x never offered
    "type": "object",
    "properties": {"currency": {"type": "string", "enum": ["GBP"]}},
}


@pytest.fixture
def ledger(app, people):
    """acme: ledger 1.1.0 installed with billing, which needs ledger ^1.1.0. Releases 1.0.0,
    1.2.0, 2.0.0 and 3.0.0 (another schema) exist. Returns the ledger installation's id."""
    with app.app_context():
        for version in ("1.0.0", "1.1.0", "1.2.0", "2.0.0"):
            approved_release("ledger", version, config_schema=SCHEMA)
        approved_release("ledger", "3.0.0", config_schema=STRICT_SCHEMA)
        approved_release("billing", "1.0.0", deps={"ledger": "^1.1.0"})
        acme = users.user_by_email(ACME_ADMIN)
        inst, _ = install_module(
            InstallRequest(module="ledger", version="=1.1.0", config={"currency": "EUR"}),
            actor=acme,
        )
        install_module(InstallRequest(module="billing"), actor=acme)
        installation_id = inst.id
        db.session.remove()
    return installation_id


def _preview(app, installation_id: int, version: str, email: str = ACME_ADMIN):
    with app.app_context():
        result = preview_version_change(installation_id, version, actor=users.user_by_email(email))
        steps = [(s.module, s.version, s.action) for s in result.plan.steps] if result.plan else []
        db.session.remove()
    return result, steps


def test_an_upgrade_every_dependent_accepts_is_planned_and_nothing_changes(app, ledger):
    before = lifecycle_state(app)

    result, steps = _preview(app, ledger, "1.2.0")

    assert (result.ok, result.status, result.direction) == (True, 200, "upgrade")
    assert ("ledger", "1.2.0", "upgrade") in steps
    assert lifecycle_state(app) == before


def test_a_version_that_breaks_a_dependent_is_409_naming_it(app, ledger):
    result, _steps = _preview(app, ledger, "1.0.0")

    assert (result.ok, result.status, result.direction) == (False, 409, "downgrade")
    assert any("billing" in reason for reason in result.reasons)


def test_the_current_version_is_no_change(app, ledger):
    result, _steps = _preview(app, ledger, "1.1.0")
    assert (result.ok, result.status, result.direction) == (False, 200, "same")
    assert "already" in result.message


@pytest.mark.parametrize(("version", "status"), [("one", 422), ("9.9.9", 422)])
def test_no_such_version_is_422(app, ledger, version, status):
    result, steps = _preview(app, ledger, version)
    assert (result.ok, result.status, steps) == (False, status, [])


def test_a_configuration_the_new_release_refuses_is_422_with_its_reasons(app, ledger):
    with app.app_context():
        lifecycle.uninstall_installation(
            ledger, actor=users.user_by_email(ACME_ADMIN), cascade=True
        )
        install_module(
            InstallRequest(module="ledger", version="=2.0.0", config={"currency": "EUR"}),
            actor=users.user_by_email(ACME_ADMIN),
        )
        db.session.remove()

    result, _steps = _preview(app, ledger, "3.0.0")

    assert (result.ok, result.status, result.direction) == (False, 422, "upgrade")
    assert result.plan is not None and result.reasons and "does not fit" in result.message


def test_another_companys_installation_is_not_found_and_an_uninstalled_one_a_conflict(app, ledger):
    with pytest.raises(NotFound):
        _preview(app, ledger, "1.2.0", email=GLOBEX_ADMIN)
    with app.app_context():
        lifecycle.uninstall_installation(
            ledger, actor=users.user_by_email(ACME_ADMIN), cascade=True
        )
        db.session.remove()
    with pytest.raises(Conflict):
        _preview(app, ledger, "1.2.0")
