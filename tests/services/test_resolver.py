"""Install plans: highest versions, backtracking, installed modules, cycles, explanations."""

from __future__ import annotations

import pytest

from portal.services.accounts import users
from portal.services.errors import ValidationFailed
from portal.services.installations.installs import InstallRequest, install_module, plan_installation
from tests.helpers import approved_release


def _plan(module, version="*", actor="admin@acme.test"):
    _company, plan = plan_installation(
        InstallRequest(module=module, version=version), actor=users.user_by_email(actor)
    )
    return [(s.module, s.version, s.action) for s in plan.steps]


def _install(module, version="*", **kw):
    return install_module(
        InstallRequest(module=module, version=version, install_dependencies=True, **kw),
        actor=users.user_by_email("admin@acme.test"),
    )


def test_the_highest_satisfying_versions_win_and_dependencies_come_first(app_ctx, people):
    for v in ("1.0.0", "1.4.0", "2.0.0"):
        approved_release("inventory", v)
    approved_release("purchasing", "1.2.0", deps={"inventory": "^1.0.0"})
    assert _plan("purchasing") == [
        ("inventory", "1.4.0", "install"),
        ("purchasing", "1.2.0", "install"),
    ]


def test_pre_releases_are_only_picked_when_asked_for(app_ctx, people):
    approved_release("inventory", "1.0.0")
    approved_release("inventory", "2.0.0-rc.1")
    assert _plan("inventory") == [("inventory", "1.0.0", "install")]
    assert _plan("inventory", ">=2.0.0-rc.1") == [("inventory", "2.0.0-rc.1", "install")]


def test_backtracking_finds_an_older_release_whose_dependencies_fit(app_ctx, people):
    approved_release("core", "1.0.0")
    approved_release("addon", "2.0.0", deps={"core": "^2.0.0"})  # core 2 does not exist
    approved_release("addon", "1.5.0", deps={"core": "^1.0.0"})
    assert _plan("addon") == [("core", "1.0.0", "install"), ("addon", "1.5.0", "install")]


def test_a_cycle_installs_together(app_ctx, people):
    approved_release("alpha", "1.0.0", deps={"beta": "*"})
    approved_release("beta", "1.0.0", deps={"alpha": "*"})
    inst, deps = _install("alpha")
    assert inst.module_name == "alpha" and [d.module_name for d in deps] == ["beta"]


def test_an_installed_module_is_kept_when_it_fits(app_ctx, people):
    approved_release("inventory", "1.0.0")
    _install("inventory")
    approved_release("inventory", "1.1.0")
    approved_release("purchasing", "1.0.0", deps={"inventory": "^1.0.0"})
    assert _plan("purchasing") == [
        ("inventory", "1.0.0", "keep"),
        ("purchasing", "1.0.0", "install"),
    ]


def test_an_installed_module_is_upgraded_when_the_request_needs_it(app_ctx, people):
    approved_release("inventory", "1.0.0")
    _install("inventory")
    approved_release("inventory", "2.1.0")
    approved_release("purchasing", "1.0.0", deps={"inventory": "^2.0.0"})
    assert _plan("purchasing") == [
        ("inventory", "2.1.0", "upgrade"),
        ("purchasing", "1.0.0", "install"),
    ]


def test_a_conflict_with_an_installed_dependent_is_explained_as_a_chain(app_ctx, people):
    approved_release("inventory", "1.4.0")
    approved_release("inventory", "2.0.0")
    approved_release("reporting", "3.1.0", deps={"inventory": "<2.0.0"})
    _install("reporting")
    approved_release("purchasing", "1.2.0", deps={"inventory": "^2.0.0"})
    with pytest.raises(ValidationFailed) as exc:
        _plan("purchasing")
    text = " ".join(e["message"] for e in exc.value.errors)
    assert "purchasing 1.2.0 needs inventory ^2.0.0" in text
    assert "acme has inventory 1.4.0" in text
    assert "reporting 3.1.0 needs as <2.0.0" in text


def test_a_missing_dependency_is_named(app_ctx, people):
    approved_release("purchasing", "1.0.0", deps={"ledger": "^1.0.0"})
    with pytest.raises(ValidationFailed) as exc:
        _plan("purchasing")
    assert "no release of ledger is available to acme" in exc.value.errors[0]["message"]


def test_deprecated_releases_are_offered_only_when_pinned_exactly(app_ctx, people):
    from portal.services.review.decisions import change_status

    old = approved_release("inventory", "1.0.0")
    approved_release("inventory", "1.1.0")
    change_status(old.id, "deprecated", actor=users.user_by_email("admin@example.com"))
    with pytest.raises(ValidationFailed):
        _plan("inventory", "<1.1.0")
    assert _plan("inventory", "=1.0.0") == [("inventory", "1.0.0", "install")]
