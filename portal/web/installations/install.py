"""Installing modules in the browser: the install plan with a configuration form per module
(generated from each release's config_schema, checked field by field as it changes; a
module the company had installed before starts from its last configuration), and
confirmation. The company's control room (its installed modules) is in control_room.py,
on this blueprint."""

from __future__ import annotations

from dataclasses import dataclass

from flask import flash, request, url_for
from flask_login import current_user, login_required

from portal.models import Company, ModuleRelease
from portal.services.accounts.access import acting_company, is_admin, list_companies
from portal.services.catalog import queries as catalog
from portal.services.errors import Conflict, DomainError, ValidationFailed
from portal.services.installations import installs, reinstall
from portal.services.installations.installs import InstallRequest, config_schema_of
from portal.services.installations.resolver import Plan, PlanStep
from portal.web import htmx
from portal.web.forms import ActionForm
from portal.web.installations.config_form import Fields, fields_for, parse_form
from portal.web.installations.shared import (
    bp,
    endpoint_url,
    endpoint_url_errors,
    first_per_pointer,
    present,
    require_installer,
)

REQUESTED_PREFIX = "config"


@dataclass
class Section:
    """The configuration form of one module the plan installs."""

    step: PlanStep
    release: ModuleRelease
    prefix: str
    requested: bool
    fields: Fields
    config: dict | None = None  # as posted (None: the module expects no configuration)
    previous: dict | None = None  # the last configuration, when installed before

    @property
    def id(self) -> str:
        return f"section-{self.step.module}"

    @property
    def errors_id(self) -> str:
        return f"{self.id}-errors"

    @property
    def schema(self) -> dict | None:
        return config_schema_of(self.release)


@bp.get("/modules/<name>/install")
@login_required
def plan(name: str):
    """The plan for the viewer's company (platform admins pick one), then the forms."""
    require_installer()
    slug, version = request.args.get("company") or None, request.args.get("version") or None
    context = {"name": name, "version": version, "slug": slug}
    if is_admin(current_user) and not slug:
        return _page(**context)
    req = InstallRequest(module=name, version=f"={version}" if version else "*", company=slug)
    try:
        company, result = installs.plan_installation(req, actor=current_user)
    except Conflict as exc:
        company = acting_company(current_user, slug)
        return _page(**context, company=company, installed_already=exc.message)
    except ValidationFailed as exc:
        company = acting_company(current_user, slug)
        return _page(**context, company=company, no_plan=exc, status=422)
    previous = _previous_configs(company, result)
    sections = [
        _section(step, result, previous.get(step.module), [], previous=previous.get(step.module))
        for step in _configurable(result)
    ]
    return _page(**context, company=company, result=result, sections=sections)


@bp.post("/modules/<name>/install/validate")
@login_required
def validate(name: str):
    """Live validation as fields change: only the error slots (out of band) and a summary.
    A check that arrives after the install went through (typed just before confirming)
    changes nothing on the page: 204."""
    require_installer()
    try:
        company, result = _posted_plan(name)
    except Conflict:
        return "", 204
    sections, endpoint_errors, hidden = _check_form(company, result, live=True)
    return htmx.render(
        "installations/_validation.html",
        sections=sections,
        endpoint_errors=endpoint_errors,
        form_errors=[],
        hidden=hidden,
    )


@bp.post("/modules/<name>/install")
@login_required
def install(name: str):
    """Confirm: install the module and the dependencies its plan needs, all or nothing."""
    require_installer()
    company, result = _posted_plan(name)
    sections, endpoint_errors, _hidden = _check_form(company, result, live=False)
    if endpoint_errors or any(_has_errors(s) for s in sections):
        return _failed(name, company, result, sections, endpoint_errors)
    requested = next(s for s in result.steps if s.module == result.requested)
    configs = {s.step.module: s.config for s in sections}
    req = InstallRequest(
        module=name,
        version=f"={requested.version}",
        config=configs.pop(name, None),
        dependency_configs={k: v for k, v in configs.items() if v is not None},
        endpoint_url=endpoint_url(),
        install_dependencies=True,
        company=company.slug,
    )
    try:
        inst, deps = installs.install_module(req, actor=current_user)
    except ValidationFailed as exc:  # changed meanwhile, or a rule only the service knows
        endpoint_errors = [e for e in exc.errors if e["pointer"] == "/endpoint_url"]
        others = [e for e in exc.errors if e not in endpoint_errors]
        form_errors = others or ([] if endpoint_errors else [_whole(exc)])
        return _failed(name, company, result, sections, endpoint_errors, form_errors)
    flash(_installed_message(inst, deps, company), "success")
    return htmx.redirect(url_for("installations.index", slug=company.slug))


# --- helpers -------------------------------------------------------------------------------


def _page(*, status: int = 200, **context):
    context.setdefault("company", None)
    return htmx.render(
        "installations/plan.html",
        status=status,
        form=ActionForm(),
        companies=list_companies(actor=current_user) if is_admin(current_user) else [],
        endpoint_url=request.form.get("endpoint_url", ""),
        **context,
    )


def _posted_plan(name: str) -> tuple[Company, Plan]:
    """The plan the posted form was made for (its requested version pinned). Raises the
    service's NotFound, PermissionDenied, Conflict (installed meanwhile), ValidationFailed."""
    version = request.form.get("version") or None
    req = InstallRequest(
        module=name,
        version=f"={version}" if version else "*",
        company=request.form.get("company") or None,
    )
    return installs.plan_installation(req, actor=current_user)


def _configurable(result: Plan) -> list[PlanStep]:
    """The requested module, and each module newly installed with it (forms for those that
    have a config_schema; upgraded dependencies keep their configuration)."""
    return [s for s in result.steps if s.action == "install"]


def _section(step: PlanStep, result: Plan, config, errors, release=None, previous=None) -> Section:
    release = release or catalog.get_release(step.module_id, actor=current_user)
    requested = step.module == result.requested
    prefix = REQUESTED_PREFIX if requested else f"deps/{step.module}"
    fields = fields_for(config_schema_of(release), config, errors, prefix)
    return Section(step, release, prefix, requested, fields, config, previous)


def _previous_configs(company: Company, result: Plan) -> dict[str, dict]:
    """The last configuration of each module of the plan the company had installed before:
    the form starts from it, as the service would reinstall with it."""
    return reinstall.previous_configs(company.id, [s.module for s in _configurable(result)])


def _check_form(
    company: Company, result: Plan, *, live: bool
) -> tuple[list[Section], list[dict], int]:
    """Every section read from the posted form and validated as the service will; `live`
    holds back "is required" for what is not filled in yet. A secret left blank keeps the
    previous installation's value. Returns (sections, endpoint URL errors, number of errors
    held back)."""
    sections, hidden = [], 0
    previous = _previous_configs(company, result)
    for step in _configurable(result):
        stored = previous.get(step.module)
        section = _section(step, result, None, [], previous=stored)
        if section.schema is None:
            if section.requested:
                sections.append(section)
            continue
        config, errors = parse_form(section.schema, request.form, section.prefix, stored)
        checked = installs.config_errors(section.release, config, stored)
        if live:
            shown = [e for e in checked if present(config, e["pointer"])]
            hidden, checked = hidden + len(checked) - len(shown), shown
        errors = first_per_pointer(errors + checked)
        sections.append(_section(step, result, config, errors, section.release, stored))
    return sections, endpoint_url_errors(), hidden


def _failed(name, company, result, sections, endpoint_errors, form_errors=()):
    """htmx: the error slots only (what was typed stays); no JS: the whole page, 422."""
    if htmx.is_partial():
        return htmx.render(
            "installations/_validation.html",
            status=422,
            sections=sections,
            endpoint_errors=endpoint_errors,
            form_errors=list(form_errors),
            hidden=0,
        )
    return _page(
        status=422,
        name=name,
        version=request.form.get("version"),
        slug=company.slug,
        company=company,
        result=result,
        sections=sections,
        endpoint_errors=endpoint_errors,
        form_errors=list(form_errors),
        failed=True,
    )


def _has_errors(section: Section) -> bool:
    return bool(section.fields.general) or any(f.errors for f in section.fields.walk())


def _whole(exc: DomainError) -> dict:
    return {"pointer": "", "message": exc.message}


def _installed_message(inst, deps, company: Company) -> str:
    message = f"Installed {inst.module_name} {inst.release.version} for {company.name}"
    if deps:
        message += ", with " + ", ".join(f"{d.module_name} {d.release.version}" for d in deps)
    return message + "."
