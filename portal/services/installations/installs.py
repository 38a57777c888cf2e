"""Installing modules for a company: plans, all-or-nothing installs, configuration."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app

from portal import events
from portal.extensions import db
from portal.lib import outbound
from portal.lib.config_schema import keep_secrets, mask_secrets, validate_config
from portal.lib.versions import Constraint, InvalidConstraint, Version
from portal.models import (
    Company,
    HealthStatus,
    Installation,
    InstallationRevision,
    InstallationStatus,
    ModuleRelease,
    User,
)
from portal.models.base import utcnow
from portal.services.accounts.access import acting_company, is_admin, may_install
from portal.services.catalog.queries import installable_clause, is_installable
from portal.services.errors import Conflict, NotFound, TooLarge, ValidationFailed
from portal.services.installations.reinstall import previous_installations
from portal.services.installations.resolver import (
    NoPlan,
    Plan,
    installed_modules,
    required_module_dependencies,
    resolve,
)
from portal.services.paging import Page, paginate
from portal.services.uow import advisory_lock, unit_of_work

MAX_CONFIG_BYTES = 64 * 1024


@dataclass
class InstallRequest:
    module_id: int | None = None
    module: str | None = None
    version: str = "*"
    config: dict | None = None
    endpoint_url: str | None = None
    install_dependencies: bool = False
    company: str | None = None
    # Configurations for dependencies the plan installs, keyed by module name.
    dependency_configs: dict = field(default_factory=dict)


def config_schema_of(release: ModuleRelease) -> dict | None:
    return (release.manifest or {}).get("config_schema")


def masked_config(installation_or_release, config: dict | None) -> dict:
    release = getattr(installation_or_release, "release", installation_or_release)
    return mask_secrets(config_schema_of(release), config or {})


def _target(company: Company, req: InstallRequest) -> tuple[str, str]:
    """(module name, constraint) of what is asked for. Raises NotFound, ValidationFailed."""
    if req.module_id is not None:
        release = db.session.get(ModuleRelease, req.module_id)
        if release is None or not is_installable(release, company.id):
            raise NotFound("No such module, or it cannot be installed.")
        return release.name, f"={release.version}"
    if not req.module:
        raise ValidationFailed(
            "Name the module to install.",
            errors=[{"pointer": "/module", "message": "give module_id or module"}],
        )
    visible = db.session.execute(
        sa.select(ModuleRelease.id)
        .where(ModuleRelease.name == req.module, installable_clause(company.id))
        .limit(1)
    ).first()
    if visible is None:
        raise NotFound("No such module, or it cannot be installed.")
    return req.module, req.version or "*"


def _resolve(company: Company, name: str, constraint: str, installed) -> Plan:
    try:
        return resolve(company, name, constraint, installed=installed)
    except InvalidConstraint as exc:
        raise ValidationFailed(
            "Invalid version constraint.", errors=[{"pointer": "/version", "message": str(exc)}]
        ) from exc
    except NoPlan as exc:
        raise ValidationFailed(
            "No install plan exists: " + " ".join(exc.reasons),
            errors=[{"pointer": "/module", "message": reason} for reason in exc.reasons],
        ) from exc


def plan_installation(req: InstallRequest, *, actor: User) -> tuple[Company, Plan]:
    """The install plan, dependencies included; nothing changes. Raises NotFound,
    PermissionDenied, Conflict (already installed), ValidationFailed (no plan)."""
    company = acting_company(actor, req.company)
    name, constraint = _target(company, req)
    installed = installed_modules(company)
    if name in installed:
        raise Conflict(f"{company.slug} has {name} installed already.")
    return company, _resolve(company, name, constraint, installed)


def check_endpoint_url(url: str | None) -> str | None:
    if url in (None, ""):
        return None
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed(
            "Invalid endpoint URL.",
            errors=[{"pointer": "/endpoint_url", "message": "must be an http(s) URL with a host"}],
        )
    if len(url) > 2048:
        raise ValidationFailed(
            "Invalid endpoint URL.",
            errors=[{"pointer": "/endpoint_url", "message": "at most 2048 characters"}],
        )
    # The outbound guard (lib/outbound): refuse now an endpoint the health checks would refuse.
    # A name that does not resolve here is kept (it may resolve only where the runtime
    # lives); every check resolves and verifies it again.
    try:
        outbound.check_url(
            url,
            allowed_networks=outbound.allowed_networks_from(current_app.config),
            resolve_timeout=outbound.SAVE_RESOLVE_TIMEOUT,
        )
    except outbound.OutboundRefused as exc:
        raise ValidationFailed(
            f"The endpoint URL is not allowed: {exc}.",
            errors=[{"pointer": "/endpoint_url", "message": str(exc)}],
        ) from exc
    except outbound.HostNotResolved:
        pass
    return url


def check_config(release: ModuleRelease, config, *, label: str = "") -> dict:
    """The configuration with the schema's defaults. Raises TooLarge, ValidationFailed
    (pointers into the configuration itself)."""
    if config is not None:
        size = len(json.dumps(config, default=str))
        if size > MAX_CONFIG_BYTES:
            raise TooLarge("The configuration is larger than 64 KiB.")
    result, errors = validate_config(config_schema_of(release), config)
    if errors:
        prefix = f"{label}: " if label else ""
        raise ValidationFailed(
            f"{prefix}the configuration of {release.name} {release.version} is invalid.",
            errors=errors,
        )
    return result


def config_errors(release: ModuleRelease, config, stored: dict | None = None) -> list[dict]:
    """Every error check_config would raise for `config`, a secret sent back as "********"
    keeping its value in `stored` (the last configuration of a module installed again), as
    install_module will check it; nothing changes (for forms checked as they are filled
    in). Raises nothing."""
    if stored is not None:
        config = keep_secrets(config_schema_of(release), config, stored)
    try:
        check_config(release, config)
    except (ValidationFailed, TooLarge) as exc:
        return exc.errors or [{"pointer": "", "message": exc.message}]
    return []


def add_revision(inst: Installation, reason: str, actor: User | None) -> None:
    db.session.add(
        InstallationRevision(
            installation_id=inst.id,
            revision=inst.revision,
            module_id=inst.module_id,
            version=inst.release.version,
            config=inst.config,
            endpoint_url=inst.endpoint_url,
            actor_id=actor.id if actor else None,
            reason=reason,
        )
    )


def install_module(req: InstallRequest, *, actor: User) -> tuple[Installation, list]:
    """Apply the whole plan in one transaction. Returns (installation, dependency
    installations). Raises NotFound, PermissionDenied, Conflict, TooLarge, ValidationFailed."""
    company, plan = plan_installation(req, actor=actor)
    if plan.extra_changes and not req.install_dependencies:
        needed = ", ".join(f"{s.module} {s.version} ({s.action})" for s in plan.extra_changes)
        raise ValidationFailed(
            f"Dependencies are missing: {needed}. Install them first or send "
            "install_dependencies: true.",
            errors=[
                {"pointer": "/install_dependencies", "message": f"{s.module} {s.version} is needed"}
                for s in plan.extra_changes
            ],
        )
    endpoint_url = check_endpoint_url(req.endpoint_url)
    installed = installed_modules(company)
    _check_plan_current(company, plan, installed)
    changes = PlanContext(
        company,
        plan,
        installed=installed,
        releases=_releases_of(plan),
        previous=previous_installations(company.id, [s.module for s in plan.changes]),
    )
    configs = plan_configs(changes, req.config, req.dependency_configs)
    return _apply_plan(changes, configs, endpoint_url, actor)


@dataclass
class PlanContext:
    """What applying a plan works from, read before its unit of work: the company's
    installed modules, the plan's releases by id, and the uninstalled record of each module
    the plan installs again."""

    company: Company
    plan: Plan
    installed: dict[str, Installation]
    releases: dict[int, ModuleRelease]
    previous: dict[str, Installation]


def _releases_of(plan: Plan) -> dict[int, ModuleRelease]:
    ids = [s.module_id for s in plan.steps]
    query = sa.select(ModuleRelease).where(ModuleRelease.id.in_(ids))
    return {r.id: r for r in db.session.execute(query).scalars()}


def plan_configs(changes: PlanContext, config, dependency_configs: dict) -> dict[str, dict]:
    """Module name → the configuration each module the plan changes is installed with,
    defaults applied: `config` for the requested module, `dependency_configs` by name for
    new dependencies, the installed one for an upgraded dependency; a module installed
    again starts from its last configuration (a secret sent as "********" keeps the stored
    one). Raises TooLarge, ValidationFailed (the first module whose configuration fails)."""
    plan, configs = changes.plan, {}
    for step in plan.changes:
        release = changes.releases[step.module_id]
        if step.module == plan.requested:
            given = config
        elif step.action == "upgrade":
            given = changes.installed[step.module].config
        else:
            given = dependency_configs.get(step.module)
        prior = changes.previous.get(step.module)
        if given is None and prior is not None:
            given = prior.config  # reinstalling keeps the last configuration
        elif prior is not None:
            given = keep_secrets(config_schema_of(release), given, prior.config)
        label = "" if step.module == plan.requested else f"dependency {step.module}"
        configs[step.module] = check_config(release, given, label=label)
    return configs


def _apply_plan(changes: PlanContext, configs: dict, endpoint_url, actor: User):
    """Install or upgrade every module the plan changes, all or nothing, once the plan is
    still current under the company's lock. Returns (the requested installation, the
    others). Raises Conflict (changed meanwhile)."""
    company, plan = changes.company, changes.plan
    created, main = [], None
    changing = ", ".join(s.module for s in plan.changes)
    with unit_of_work(f"{company.slug}'s {changing} changed meanwhile; nothing was installed."):
        lock_company_installations(company.id)
        _check_plan_current(company, plan)
        for step in plan.changes:
            release, config = changes.releases[step.module_id], configs[step.module]
            if step.action == "upgrade":
                inst = changes.installed[step.module]
                _move(inst, release, config, "upgrade", actor, company)
            else:
                url = endpoint_url if step.module == plan.requested else None
                prior = changes.previous.get(step.module)
                inst = _create(company, release, config, prior, actor, url)
            if step.module == plan.requested:
                main = inst
            else:
                created.append(inst)
        # The plan kept every installed module's constraint it knew of; a dependent installed
        # meanwhile, outside the plan, may forbid a release the plan moves to.
        unmet = unmet_requirements(company.id, {s.module for s in plan.changes})
        if unmet:
            raise Conflict(
                "Installed meanwhile, and would be broken: " + " ".join(unmet),
                errors=[{"pointer": "/module", "message": u} for u in unmet],
            )
    return main, created


def lock_company_installations(company_id: int) -> None:
    """Make the units of work that change one company's installations take turns: call it
    first inside the unit of work, before its final checks. (Install, uninstall with or
    without cascade, and every change of an installation: lifecycle.py.)

    The dependency rule spans rows: a module and those it requires, some not inserted yet.
    Two transactions that each check before the other commits can both pass, and leave a
    module installed whose dependency was just uninstalled or moved to a version it does not
    allow. SQLite's write transaction (BEGIN IMMEDIATE) already serializes every writer. On
    PostgreSQL a transaction-level advisory lock per company does it for these changes: one
    statement on every path, no lock order to keep (row locks would have to cover kept,
    changed and not-yet-existing rows alike), and under READ COMMITTED (the default, which
    this relies on) each check after it reads what the previous holder committed. Changes
    to one company's installations are rare, so taking turns costs nothing noticeable.
    """
    advisory_lock("company-installations", company_id)


def unmet_requirements(company_id: int, changed: set[str]) -> list[str]:
    """Inside a unit of work, after its writes: the required module dependencies that
    involve a module in `changed` (its own, and its dependents' on it) and that the
    company's active installations, as they now are, do not meet. As sentences."""
    rows = db.session.execute(
        sa.select(Installation.module_name, ModuleRelease.version, ModuleRelease.manifest)
        .join(ModuleRelease, ModuleRelease.id == Installation.module_id)
        .where(
            Installation.company_id == company_id,
            Installation.status == InstallationStatus.INSTALLED,
        )
    ).all()
    versions = {row.module_name: row.version for row in rows}
    unmet = []
    for row in rows:
        for dep, text in required_module_dependencies(row.manifest):
            if row.module_name not in changed and dep not in changed:
                continue
            have = versions.get(dep)
            if have is None:
                unmet.append(f"{row.module_name} {row.version} needs {dep} {text}, now absent.")
                continue
            try:
                allowed = Constraint.parse(text).allows(Version.parse(have))
            except ValueError:  # published manifests parse; never let old data make a 500
                continue
            if not allowed:
                unmet.append(f"{row.module_name} {row.version} needs {dep} {text}, not {have}.")
    return sorted(unmet)


def _check_plan_current(company: Company, plan: Plan, installed: dict | None = None) -> None:
    """Raise Conflict unless the company's installed modules are still those the plan was
    made against (another request may have installed, upgraded or removed one meanwhile).

    `installed` None reads afresh: inside the unit of work, after
    lock_company_installations, so the answer is exact on both databases."""
    names = [s.module for s in plan.steps]
    if installed is not None:
        now = {n: i.release.version for n, i in installed.items() if n in names}
    else:
        now = dict(
            db.session.execute(
                sa.select(Installation.module_name, ModuleRelease.version)
                .join(ModuleRelease, ModuleRelease.id == Installation.module_id)
                .where(
                    Installation.company_id == company.id,
                    Installation.status == InstallationStatus.INSTALLED,
                    Installation.module_name.in_(names),
                )
            ).all()
        )
    changed = [s.module for s in plan.steps if now.get(s.module) != s.installed_version]
    if changed:
        raise Conflict(
            f"{', '.join(changed)} changed for {company.slug} meanwhile (installed, upgraded "
            "or removed by another request); nothing was installed. Ask for the plan again."
        )


def _create(company, release, config, previous, actor, endpoint_url=None) -> Installation:
    if previous is not None:
        inst = previous
        inst.status = InstallationStatus.INSTALLED
        inst.module_id, inst.release = release.id, release
        inst.config, inst.revision = config, previous.revision + 1
        inst.uninstalled_at = None
        inst.endpoint_url = endpoint_url or previous.endpoint_url
        reason = "reinstall"
    else:
        inst = Installation(
            company_id=company.id,
            module_name=release.name,
            module_id=release.id,
            release=release,
            status=InstallationStatus.INSTALLED,
            config=config,
            endpoint_url=endpoint_url,
            revision=1,
        )
        db.session.add(inst)
        reason = "install"
    db.session.flush()
    add_revision(inst, reason, actor)
    events.record_event(
        events.INSTALLATION_CREATED,
        actor=actor,
        company=company.slug,
        module=release,
        installation_id=inst.id,
        data={"revision": inst.revision, "config": masked_config(release, config)},
    )
    return inst


def _move(inst, release, config, reason, actor, company) -> None:
    from_version = inst.release.version
    inst.module_id, inst.release, inst.config = release.id, release, config
    inst.revision += 1
    inst.updated_at = utcnow()
    db.session.flush()
    add_revision(inst, reason, actor)
    events.record_event(
        events.INSTALLATION_UPDATED,
        actor=actor,
        company=company.slug,
        module=release,
        installation_id=inst.id,
        data={
            "changed": ["version"],
            "from_version": from_version,
            "to_version": release.version,
            "revision": inst.revision,
        },
    )


def get_installation(installation_id: int, *, actor: User) -> Installation:
    """One installation of the actor's company (any, for admins). Raises NotFound."""
    inst = db.session.get(Installation, installation_id)
    if inst is None or not (is_admin(actor) or inst.company_id == actor.company_id):
        raise NotFound("No such installation.")
    if not may_install(actor):
        raise NotFound("No such installation.")
    return inst


def list_installations(
    *,
    actor: User,
    page: int,
    per_page: int,
    company: str | None = None,
    status: str | None = InstallationStatus.INSTALLED,
    module: str | None = None,
    health: str | None = None,
) -> Page:
    """A company's installations (admins: any company, or all). Raises ValidationFailed,
    PermissionDenied, NotFound."""
    query = sa.select(Installation)
    if is_admin(actor):
        if company:
            query = query.join(Company).where(Company.slug == company)
    else:
        own = acting_company(actor, company)
        query = query.where(Installation.company_id == own.id)
    errors = []
    if status and status != "all" and not InstallationStatus.has(status):
        errors.append({"pointer": "/status", "message": "installed, uninstalled or all"})
    if health and not HealthStatus.has(health):
        errors.append({"pointer": "/health", "message": "unknown, healthy, degraded, unhealthy"})
    if errors:
        raise ValidationFailed("Invalid filter.", errors=errors)
    if status and status != "all":
        query = query.where(Installation.status == status)
    if module:
        query = query.where(Installation.module_name == module)
    if health:
        query = query.where(Installation.health_status == health)
    return paginate(query.order_by(Installation.module_name, Installation.id), page, per_page)
