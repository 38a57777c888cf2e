"""The company's control room at /company/<slug>/installations: the installed modules with
live health badges and "upgrade available", and per installation a panel that opens in
place (htmx) or as a page of its own (no JavaScript): configure, change version with the
plan shown first, revision history with diffs and rollback, uninstall naming the
dependents. Forms post and, without htmx, redirect (303); with htmx the list comes back out
of band. The routes live on the installations blueprint (portal/web/installations.py
imports this module, which imports control_room_version.py, the version change)."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app, flash, request, url_for
from flask_login import current_user, login_required

from portal.models import Company, Installation
from portal.services import installations, lifecycle
from portal.services.access import visible_company
from portal.services.errors import Conflict, NotFound, TooLarge, ValidationFailed
from portal.services.health import health_badges
from portal.services.installations import config_schema_of
from portal.web import htmx
from portal.web.config_form import Fields, fields_for, parse_form
from portal.web.control_room_data import history, upgrades_available
from portal.web.forms import ActionForm
from portal.web.installations import (
    _endpoint_errors,
    _endpoint_url,
    _first_per_pointer,
    _present,
    _require_installer,
    bp,
)
from portal.web.pager import page_in_range, page_number, page_size

PER_PAGE = 50
PREVIOUS_PER_PAGE = 20
PREFIX = "config"
DEFAULT_POLL_SECONDS = 10
ROOT = "/company/<slug>/installations"
ONE = ROOT + "/<int:installation_id>"


# --- The page and its polled badges ---------------------------------------------------------


@bp.get(ROOT)
@login_required
def index(slug: str):
    """The control room; htmx (paging) gets the list block alone."""
    _require_installer()
    company = visible_company(current_user, slug)
    return htmx.render("installations/index.html", block="installations", **list_context(company))


@bp.get(ROOT + "/health")
@login_required
def health(slug: str):
    """The health badges, out of band, for the page's polling: one query (company admins)."""
    _require_installer()
    rows = health_badges(slug, actor=current_user)
    return htmx.render("installations/_health_oob.html", rows=rows)


def poll_seconds() -> int:
    """How often the badges refresh: app config HEALTH_BADGE_POLL_SECONDS (default 10)."""
    value = current_app.config.get("HEALTH_BADGE_POLL_SECONDS", DEFAULT_POLL_SECONDS)
    return max(1, int(value))


def list_context(company: Company, *, focus_id: int | None = None, focus_count=False) -> dict:
    """What the list block needs: installed modules and previous ones, each paged on its
    own (`page`, `previous_page`: each pager keeps the other's page), and upgrades."""
    per_page = page_size(request.args, PER_PAGE)
    found = page_in_range(
        lambda n: installations.list_installations(
            actor=current_user, page=n, per_page=per_page, company=company.slug
        ),
        page_number(request.args),
    )
    previous = page_in_range(
        lambda n: installations.list_installations(
            actor=current_user,
            page=n,
            per_page=PREVIOUS_PER_PAGE,
            company=company.slug,
            status="uninstalled",
        ),
        page_number(request.args, "previous_page"),
    )

    def url(installed: int, uninstalled: int) -> str:
        kept = {
            "page": installed if installed > 1 else None,
            "previous_page": uninstalled if uninstalled > 1 else None,
            "per_page": per_page if per_page != PER_PAGE else None,
        }
        return url_for("installations.index", slug=company.slug, **kept)

    return {
        "company": company,
        "installations": found,
        "previous": previous,
        "upgrades": upgrades_available(company, found.items),
        "page_url": lambda n: url(n, previous.page),
        "previous_page_url": lambda n: url(found.page, n),
        "poll_seconds": poll_seconds(),
        "focus_id": focus_id,
        "focus_count": focus_count,
    }


# --- Shared by every panel ------------------------------------------------------------------


def owned(slug: str, installation_id: int) -> tuple[Company, Installation]:
    """The company and its installation. Another company's id raises the very NotFound an
    absent id raises (same message, same answer)."""
    _require_installer()
    company = visible_company(current_user, slug)
    inst = installations.get_installation(installation_id, actor=current_user)
    if inst.company_id != company.id:
        raise NotFound("No such installation.")
    return company, inst


def require_active(inst: Installation) -> None:
    if inst.status != "installed":
        raise Conflict(f"{inst.module_name} is uninstalled; install it again first.")


def panel(company: Company, template: str, *, status: int = 200, **context):
    """htmx: the panel alone; else the whole control room with the panel open."""
    page = {"company": company} if htmx.is_partial() else list_context(company)
    return htmx.render(
        "installations/index.html",
        block="panel",
        status=status,
        panel=template,
        action_form=ActionForm(),
        **{**page, **context},
    )


def done(company: Company, redirect_to: str, *, template: str | None = None, **context):
    """After a change: without htmx a 303 to `redirect_to` (the flash shown there); with
    htmx the panel (`template`, or closed) and the list out of band."""
    if not htmx.is_partial():
        return htmx.redirect(redirect_to)
    focus = {k: context.pop(k) for k in ("focus_id", "focus_count") if k in context}
    return htmx.render(
        "installations/_changed.html",
        block="changed",
        panel=template,
        action_form=ActionForm(),
        **list_context(company, **focus),
        **context,
    )


def posted_int(name: str) -> int | None:
    raw = (request.form.get(name) or "").strip()
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


def index_url(company: Company, inst: Installation | None = None) -> str:
    anchor = f"installation-{inst.id}" if inst is not None else None
    return url_for("installations.index", slug=company.slug, _anchor=anchor)


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
    if inst.status != "installed":
        return "", 204
    config, errors = _posted_config(inst)
    schema = config_schema_of(inst.release)
    checked = _config_errors(inst, config) if schema is not None else []
    shown = [e for e in checked if _present(config, e["pointer"])]
    form = ConfigureForm(
        inst,
        fields_for(schema, config, _first_per_pointer(errors + shown), PREFIX),
        _endpoint_url() or "",
        inst.revision,
    )
    return htmx.render(
        "installations/_validation.html",
        sections=[form],
        endpoint_errors=_endpoint_errors(),
        form_errors=[],
        hidden=len(checked) - len(shown),
        ok_text="Looks good: save to apply.",
        form_errors_id="configure-errors",
    )


@bp.post(ONE + "/configure")
@login_required
def save_configure(slug: str, installation_id: int):
    """A new revision with the posted configuration and endpoint, if it is still based on
    the installation's revision (else 409 and nothing changes)."""
    company, inst = owned(slug, installation_id)
    config, errors = _posted_config(inst)
    revision = posted_int("revision")
    if revision is None:
        errors.append({"pointer": "", "message": "The form lost its revision: reload it."})
    # Every reason at once (the service stops at the first kind): fields, then endpoint.
    if config is not None and inst.status == "installed":
        errors = _first_per_pointer(errors + _config_errors(inst, config))
    endpoint_errors = _endpoint_errors()
    if errors or endpoint_errors:
        return _configure_failed(
            company, inst, config, revision, errors=errors, endpoint_errors=endpoint_errors
        )
    changes = {"endpoint_url": _endpoint_url()}
    if config_schema_of(inst.release) is not None:
        changes["config"] = config
    before = inst.revision
    try:
        inst = lifecycle.update_installation(
            inst.id, changes, actor=current_user, expected_revision=revision
        )
    except (Conflict, ValidationFailed, TooLarge) as exc:
        return _configure_failed(company, inst, config, revision, exc=exc)
    if inst.revision == before:
        flash(f"Nothing changed in {inst.module_name}.", "info")
    else:
        flash(f"Saved {inst.module_name}: revision {inst.revision}.", "success")
    return done(company, index_url(company, inst), focus_id=inst.id)


def _posted_config(inst: Installation) -> tuple[dict | None, list[dict]]:
    """The configuration the form posted (a blank secret: "********", kept as stored)."""
    schema = config_schema_of(inst.release)
    if schema is None:
        return None, []
    return parse_form(schema, request.form, PREFIX, existing=inst.config)


def _config_errors(inst: Installation, config) -> list[dict]:
    try:
        installations.check_config(
            inst.release,
            lifecycle.keep_secrets(config_schema_of(inst.release), config, inst.config),
        )
    except ValidationFailed as exc:
        return exc.errors or [{"pointer": "", "message": exc.message}]
    except TooLarge as exc:
        return [{"pointer": "", "message": exc.message}]
    return []


def _configure_failed(company, inst, config, revision, *, errors=(), endpoint_errors=(), exc=None):
    """The form again with what was posted (secrets never shown back) and why it failed:
    field errors beside their fields, the endpoint's beside it, a stale revision on top."""
    errors, endpoint_errors, form_errors, conflict = list(errors), list(endpoint_errors), [], None
    status = 422
    if exc is not None:
        status = exc.status
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
        _endpoint_url() or "",
        revision if revision is not None else inst.revision,
        endpoint_errors=endpoint_errors,
        form_errors=form_errors,
        conflict=conflict,
        failed=True,
    )
    return panel(company, "installations/_configure.html", status=status, form=form)


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
        inst = lifecycle.rollback_installation(
            inst.id, revision, actor=current_user, expected_revision=expected
        )
    except (Conflict, ValidationFailed) as exc:
        # Stale: the installation is not (or, after losing a race, no longer) at the
        # revision the form was based on. The panel shows the history as it is now.
        if isinstance(exc, Conflict) and expected is not None and inst.revision != expected:
            return _history(company, inst, conflict=exc.message, status=exc.status)
        return _history(company, inst, error=exc, status=exc.status)
    target = revision if revision is not None else inst.revision - 2  # the service's default
    flash(
        f"Rolled {inst.module_name} back to revision {target}: now revision {inst.revision}, "
        f"version {inst.release.version}.",
        "success",
    )
    url = url_for("installations.history_panel", slug=company.slug, installation_id=inst.id)
    return done(company, url, **_history_context(inst))


def _history_context(inst: Installation) -> dict:
    return {
        "template": "installations/_history.html",
        "inst": inst,
        "entries": history(lifecycle.list_revisions(inst.id, actor=current_user)),
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
        dependents = lifecycle.dependents_of(inst) if inst.status == "installed" else []
    return panel(
        company,
        "installations/_uninstall.html",
        status=status,
        inst=inst,
        dependents=dependents,
        error=error,
    )


# Upgrades and downgrades (their own module, on the same blueprint).
from portal.web import control_room_version  # noqa: E402, F401
