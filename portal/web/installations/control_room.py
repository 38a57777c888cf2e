"""The company's control room at /company/<slug>/installations: the installed modules with
live health badges and "upgrade available", and per installation a panel that opens in
place (htmx) or as a page of its own (no JavaScript): configure, change version with the
plan shown first, revision history with diffs and rollback, uninstall naming the
dependents. Forms post and, without htmx, redirect (303); with htmx the list comes back out
of band. The routes live on the installations blueprint (shared.py); version changes are
in versions.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import flash, request, url_for
from flask_login import current_user, login_required

from portal.models import Installation, InstallationStatus
from portal.services.accounts.access import visible_company
from portal.services.errors import Conflict, TooLarge, ValidationFailed
from portal.services.health.records import health_badges
from portal.services.installations import lifecycle
from portal.services.installations.installs import config_schema_of
from portal.services.installations.revisions import revision_changes
from portal.web import htmx
from portal.web.installations.config_form import Fields, fields_for, parse_form
from portal.web.installations.shared import (
    ONE,
    ROOT,
    bp,
    done,
    endpoint_url,
    first_per_pointer,
    index_url,
    list_context,
    owned,
    panel,
    posted_int,
    present,
    require_active,
    require_installer,
)

PREFIX = "config"


# --- The page and its polled badges ---------------------------------------------------------


@bp.get(ROOT)
@login_required
def index(slug: str):
    """The control room; htmx (paging) gets the list block alone."""
    require_installer()
    company = visible_company(current_user, slug)
    return htmx.render("installations/index.html", block="installations", **list_context(company))


@bp.get(ROOT + "/health")
@login_required
def health(slug: str):
    """The health badges, out of band, for the page's polling: one query (company admins)."""
    require_installer()
    rows = health_badges(slug, actor=current_user)
    return htmx.render("installations/_health_oob.html", rows=rows)


# --- Configure -------------------------------------------------------------------------------


@dataclass
class ConfigureForm:
    """The generated form of an installation's configuration, plus its endpoint URL, based
    on one revision."""

    inst: Installation
    fields: Fields
    endpoint_url: str
    revision: int
    endpoint_errors: list = field(default_factory=list)
    form_errors: list = field(default_factory=list)
    conflict: str | None = None
    failed: bool = False
    errors_id: str = "configure-section-errors"


@bp.get(ONE + "/configure")
@login_required
def configure(slug: str, installation_id: int):
    company, inst = owned(slug, installation_id)
    require_active(inst)
    form = ConfigureForm(
        inst,
        fields_for(config_schema_of(inst.release), inst.config, [], PREFIX),
        inst.endpoint_url or "",
        inst.revision,
    )
    return panel(company, "installations/_configure.html", form=form)


@bp.post(ONE + "/configure/validate")
@login_required
def validate_configure(slug: str, installation_id: int):
    """Live validation: the error slots out of band; 204 once the module is uninstalled."""
    _company, inst = owned(slug, installation_id)
    if inst.status != InstallationStatus.INSTALLED:
        return "", 204
    config, unreadable = _posted_config(inst)
    try:
        checked = lifecycle.change_errors(inst.id, _changes(inst, config), actor=current_user)
    except Conflict:  # uninstalled meanwhile
        return "", 204
    except TooLarge as exc:
        checked = [{"pointer": "", "message": exc.message}]
    return _live_validation(inst, config, unreadable, checked)


@bp.post(ONE + "/configure")
@login_required
def save_configure(slug: str, installation_id: int):
    """A new revision with the posted configuration and endpoint, if it is still based on
    the installation's revision (else 409 and nothing changes)."""
    company, inst = owned(slug, installation_id)
    config, unreadable = _posted_config(inst)
    revision, changes, before = posted_int("revision"), _changes(inst, config), inst.revision
    try:
        if unreadable or revision is None:
            raise _unreadable_form(inst, changes, unreadable, revision)
        inst = lifecycle.update_installation(
            inst.id, changes, actor=current_user, expected_revision=revision
        )
    except (Conflict, ValidationFailed, TooLarge) as exc:
        return _configure_failed(company, inst, config, revision, exc)
    if inst.revision == before:
        flash(f"Nothing changed in {inst.module_name}.", "info")
    else:
        flash(f"Saved {inst.module_name}: revision {inst.revision}.", "success")
    return done(company, index_url(company, inst), focus_id=inst.id)


def _posted_config(inst: Installation) -> tuple[dict | None, list[dict]]:
    """The configuration the form posted (a blank secret: "********", kept as stored), and
    the fields it could not read."""
    schema = config_schema_of(inst.release)
    if schema is None:
        return None, []
    return parse_form(schema, request.form, PREFIX, existing=inst.config)


def _changes(inst: Installation, config) -> dict:
    changes = {"endpoint_url": endpoint_url()}
    if config_schema_of(inst.release) is not None:
        changes["config"] = config
    return changes


def _unreadable_form(inst, changes, unreadable, revision) -> ValidationFailed:
    """A form that could not be read whole is not applied: what it could not read, and
    every error the service finds in the rest. Raises the service's Conflict, TooLarge."""
    errors = list(unreadable)
    if revision is None:
        errors.append({"pointer": "", "message": "The form lost its revision: reload it."})
    errors += lifecycle.change_errors(inst.id, changes, actor=current_user)
    return ValidationFailed("The form has errors.", errors=first_per_pointer(errors))


def _live_validation(inst, config, unreadable, checked):
    """The error slots: what the form could not read, the service's errors for what is
    filled in (the rest held back until saving), the endpoint's."""
    endpoint_errors = [e for e in checked if e["pointer"] == "/endpoint_url"]
    config_errors = [e for e in checked if e not in endpoint_errors]
    shown = [e for e in config_errors if present(config, e["pointer"])]
    form = ConfigureForm(
        inst,
        fields_for(
            config_schema_of(inst.release), config, first_per_pointer(unreadable + shown), PREFIX
        ),
        endpoint_url() or "",
        inst.revision,
    )
    return htmx.render(
        "installations/_validation.html",
        sections=[form],
        endpoint_errors=endpoint_errors,
        form_errors=[],
        hidden=len(config_errors) - len(shown),
        ok_text="Looks good: save to apply.",
        form_errors_id="configure-errors",
    )


def _configure_failed(company, inst, config, revision, exc):
    """The form again with what was posted (secrets never shown back) and why it failed:
    field errors beside their fields, the endpoint's beside it, a stale revision on top."""
    errors, endpoint_errors, form_errors, conflict = [], [], [], None
    if isinstance(exc, Conflict):
        conflict = exc.message
    for err in exc.errors or ([] if conflict else [{"pointer": "", "message": exc.message}]):
        if err["pointer"] == "/endpoint_url":
            endpoint_errors.append(err)
        elif err["pointer"].startswith("/version"):
            form_errors.append({"pointer": "", "message": err["message"]})
        else:
            errors.append(err)
    schema = config_schema_of(inst.release)
    form = ConfigureForm(
        inst,
        fields_for(schema, config if config is not None else inst.config, errors, PREFIX),
        endpoint_url() or "",
        revision if revision is not None else inst.revision,
        endpoint_errors=endpoint_errors,
        form_errors=form_errors,
        conflict=conflict,
        failed=True,
    )
    return panel(company, "installations/_configure.html", status=exc.status, form=form)


# --- History and rollback --------------------------------------------------------------------


@bp.get(ONE + "/history")
@login_required
def history_panel(slug: str, installation_id: int):
    company, inst = owned(slug, installation_id)
    return _history(company, inst)


@bp.post(ONE + "/rollback")
@login_required
def rollback(slug: str, installation_id: int):
    """Restore an earlier revision as a new one, if the installation is still at the
    revision the history was shown at (`expected_revision`; else 409 and nothing changes,
    as for configure). 422: it no longer validates; 409: a dependent would break, or the
    module is uninstalled."""
    company, inst = owned(slug, installation_id)
    revision, expected = posted_int("revision"), posted_int("expected_revision")
    try:
        inst, restored = lifecycle.rollback_installation(
            inst.id, revision, actor=current_user, expected_revision=expected
        )
    except (Conflict, ValidationFailed) as exc:
        # Stale: the installation is not (or, after losing a race, no longer) at the
        # revision the form was based on. The panel shows the history as it is now.
        if isinstance(exc, Conflict) and expected is not None and inst.revision != expected:
            return _history(company, inst, conflict=exc.message, status=exc.status)
        return _history(company, inst, error=exc, status=exc.status)
    flash(
        f"Rolled {inst.module_name} back to revision {restored}: now revision {inst.revision}, "
        f"version {inst.release.version}.",
        "success",
    )
    url = url_for("installations.history_panel", slug=company.slug, installation_id=inst.id)
    return done(company, url, **_history_context(inst))


def _history_context(inst: Installation) -> dict:
    return {
        "template": "installations/_history.html",
        "inst": inst,
        "entries": revision_changes(inst.id, actor=current_user),
    }


def _history(company, inst, *, error=None, conflict=None, status=200):
    context = _history_context(inst)
    template = context.pop("template")
    return panel(company, template, status=status, error=error, conflict=conflict, **context)


# --- Uninstall -------------------------------------------------------------------------------


@bp.get(ONE + "/uninstall")
@login_required
def confirm_uninstall(slug: str, installation_id: int):
    """The confirmation step: names the modules that depend on this one, offers the cascade."""
    company, inst = owned(slug, installation_id)
    require_active(inst)
    return _uninstall_panel(company, inst)


@bp.post(ONE + "/uninstall")
@login_required
def uninstall(slug: str, installation_id: int):
    company, inst = owned(slug, installation_id)
    cascade = request.form.get("cascade", "").lower() in ("1", "true", "on", "yes")
    try:
        removed = lifecycle.uninstall_installation(inst.id, actor=current_user, cascade=cascade)
    except Conflict as exc:
        dependents = (exc.extra or {}).get("dependents")
        return _uninstall_panel(company, inst, error=exc, status=409, dependents=dependents)
    names = ", ".join(f"{r.module_name} {r.release.version}" for r in removed)
    flash(f"Uninstalled {names}. Their configuration is kept for a reinstall.", "success")
    return done(company, index_url(company), focus_count=True)


def _uninstall_panel(company, inst, *, error=None, status=200, dependents=None):
    if dependents is None:
        dependents = (
            lifecycle.dependents_of(inst) if inst.status == InstallationStatus.INSTALLED else []
        )
    return panel(
        company,
        "installations/_uninstall.html",
        status=status,
        inst=inst,
        dependents=dependents,
        error=error,
    )
