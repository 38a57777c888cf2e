"""Living with installed modules: changes (configuration, endpoint, version), revisions
and rollback, safe uninstall, and what runtimes report (configuration, heartbeats)."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from portal import events
from portal.extensions import db
from portal.lib.config_schema import keep_secrets
from portal.lib.versions import InvalidVersion, Version
from portal.models import (
    REPORTED_HEALTH,
    Installation,
    InstallationRevision,
    InstallationStatus,
    ModuleRelease,
    User,
)
from portal.models.base import utcnow
from portal.services.accounts.access import is_admin
from portal.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from portal.services.installations.installs import (
    add_revision,
    check_config,
    check_endpoint_url,
    config_schema_of,
    get_installation,
    lock_company_installations,
    unmet_requirements,
)
from portal.services.installations.resolver import (
    NoPlan,
    installed_modules,
    required_module_dependencies,
    resolve,
)
from portal.services.uow import unit_of_work


def _active(installation_id: int, actor: User) -> Installation:
    inst = get_installation(installation_id, actor=actor)
    if inst.status != InstallationStatus.INSTALLED:
        raise Conflict(f"{inst.module_name} is uninstalled; install it again first.")
    return inst


def _check_expected_revision(inst: Installation, expected_revision: int | None) -> None:
    """A change based on a revision the installation has moved on from (a stale page or
    If-Match) is refused; None: based on whatever the installation is at."""
    if expected_revision is not None and expected_revision != inst.revision:
        raise Conflict(
            f"The installation is at revision {inst.revision}, not {expected_revision}; "
            "reload first."
        )


def _release_for_version(inst: Installation, version: str) -> ModuleRelease:
    """The release `version` of the installed module, resolved against every dependent's
    constraint. Raises ValidationFailed, Conflict (a dependent would break)."""
    try:
        Version.parse(version)
    except InvalidVersion as exc:
        raise ValidationFailed(
            "Invalid version.", errors=[{"pointer": "/version", "message": str(exc)}]
        ) from exc
    try:
        plan = resolve(inst.company, inst.module_name, f"={version}")
    except NoPlan as exc:
        error = Conflict if exc.involves_installed else ValidationFailed
        raise error(
            "The change would break: " + " ".join(exc.reasons),
            errors=[{"pointer": "/version", "message": r} for r in exc.reasons],
        ) from exc
    if plan.extra_changes:
        needed = ", ".join(f"{s.module} {s.version}" for s in plan.extra_changes)
        raise ValidationFailed(
            f"{inst.module_name} {version} needs modules this company lacks: {needed}.",
            errors=[{"pointer": "/version", "message": f"install {needed} first"}],
        )
    step = next(s for s in plan.steps if s.module == inst.module_name)
    return db.session.get(ModuleRelease, step.module_id)


def _apply(
    inst: Installation,
    *,
    release: ModuleRelease,
    config: dict,
    endpoint_url: str | None,
    base_revision: int,
    reason: str,
    actor: User,
    event_type: str,
    data: dict,
) -> Installation:
    """Write a new revision, guarded by the revision the change was based on."""
    company_id, moving = inst.company_id, release.id != inst.module_id
    with unit_of_work():
        lock_company_installations(company_id)
        moved = db.session.execute(
            sa.update(Installation)
            .where(
                Installation.id == inst.id,
                Installation.revision == base_revision,
                Installation.status == InstallationStatus.INSTALLED,
            )
            .values(
                revision=base_revision + 1,
                module_id=release.id,
                config=config,
                endpoint_url=endpoint_url,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:
            raise ChangedMeanwhile("The installation changed meanwhile; reload and try again.")
        if moving:
            # The plan was checked against the installations read before this transaction;
            # a dependent installed (or a dependency moved) meanwhile must not be broken.
            unmet = unmet_requirements(company_id, {inst.module_name})
            if unmet:
                raise Conflict(
                    "The change would break: " + " ".join(unmet),
                    errors=[{"pointer": "/version", "message": u} for u in unmet],
                )
        db.session.refresh(inst)
        add_revision(inst, reason, actor)
        events.record_event(
            event_type,
            actor=actor,
            company=inst.company.slug,
            module=release,
            installation_id=inst.id,
            data={**data, "revision": inst.revision},
        )
    return inst


@dataclass
class _Checked:
    """A change read against the installation: the release, configuration and endpoint it
    would have, what differs, and every reason it cannot be made."""

    release: ModuleRelease
    config: object
    endpoint_url: str | None
    changed: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)


def _check_changes(inst: Installation, changes: dict) -> _Checked:
    """Every error of a change at once: the version's (pointer /version), the
    configuration's against the release it would run (pointers into the configuration)
    and the endpoint URL's (/endpoint_url). Raises Conflict (a dependent would break),
    TooLarge (a configuration over 64 KiB): those leave nothing else worth saying."""
    checked = _Checked(inst.release, inst.config, inst.endpoint_url)
    if changes.get("version") not in (None, inst.release.version):
        try:
            checked.release = _release_for_version(inst, changes["version"])
        except ValidationFailed as exc:
            checked.errors += exc.errors or [{"pointer": "/version", "message": exc.message}]
        else:
            if checked.release.id != inst.module_id:
                checked.changed.append("version")
    if changes.get("config") is not None:
        schema = config_schema_of(checked.release)
        checked.config = keep_secrets(schema, changes["config"], inst.config)
    try:
        checked.config = check_config(checked.release, checked.config)
    except ValidationFailed as exc:
        checked.errors += exc.errors or [{"pointer": "", "message": exc.message}]
    else:
        if checked.config != inst.config:
            checked.changed.append("config")
    if "endpoint_url" in changes:
        try:
            checked.endpoint_url = check_endpoint_url(changes["endpoint_url"])
        except ValidationFailed as exc:
            checked.errors += exc.errors
        else:
            if checked.endpoint_url != inst.endpoint_url:
                checked.changed.append("endpoint_url")
    return checked


def change_errors(installation_id: int, changes: dict, *, actor: User) -> list[dict]:
    """What update_installation would refuse in `changes`, every error at once, with
    nothing changed (for forms checked as they are filled in). Raises NotFound, Conflict
    (uninstalled, a dependent would break), TooLarge."""
    return _check_changes(_active(installation_id, actor), changes).errors


class ChangedMeanwhile(Conflict):
    """Another change committed between reading an installation and writing its next
    revision."""


BLIND_EDIT_TRIES = 5


def update_installation(
    installation_id: int, changes: dict, *, actor: User, expected_revision: int | None = None
) -> Installation:
    """Change configuration, endpoint and/or version as a new revision. Raises NotFound,
    Conflict (stale expected revision, a dependent would break), ValidationFailed (every
    version, configuration and endpoint error at once), TooLarge.

    Without `expected_revision` the change applies on top of whatever revision is current:
    one that lost a race with another edit is read and checked again, so N concurrent
    blind edits make N revisions (api.md documents 409 only for a stale If-Match)."""
    if expected_revision is not None:
        return _update_once(installation_id, changes, actor, expected_revision)
    company_id = _active(installation_id, actor).company_id
    for attempt in range(BLIND_EDIT_TRIES):
        try:
            # Read, check and write under the company's lock, so blind edits queue
            # rather than race; the retry covers a change made between read and lock.
            with unit_of_work():
                lock_company_installations(company_id)
                return _update_once(installation_id, changes, actor, None)
        except ChangedMeanwhile:
            if attempt == BLIND_EDIT_TRIES - 1:
                raise
            db.session.rollback()  # read the installation as the winner left it
    raise AssertionError("unreachable")


def _update_once(installation_id, changes, actor, expected_revision) -> Installation:
    inst = _active(installation_id, actor)
    db.session.refresh(inst)
    base = inst.revision
    _check_expected_revision(inst, expected_revision)
    checked = _check_changes(inst, changes)
    if checked.errors:
        raise ValidationFailed(_summary(checked.errors, checked.release), errors=checked.errors)
    changed, release = checked.changed, checked.release
    if not changed:
        return inst
    data: dict = {"changed": sorted(changed)}
    reason = "config" if changed != ["endpoint_url"] else "endpoint"
    if "version" in changed:
        data["from_version"], data["to_version"] = inst.release.version, release.version
        upward = Version.parse(release.version) > Version.parse(inst.release.version)
        reason = "upgrade" if upward else "downgrade"
    return _apply(
        inst,
        release=release,
        config=checked.config,
        endpoint_url=checked.endpoint_url,
        base_revision=base,
        reason=reason,
        actor=actor,
        event_type=events.INSTALLATION_UPDATED,
        data=data,
    )


def _summary(errors: list[dict], release: ModuleRelease) -> str:
    """The message of a refused change: each part that is invalid, with its first reason."""
    firsts: dict[str, str] = {}
    for err in errors:
        part = _PARTS.get(err["pointer"], "configuration")
        where = "" if part in _PARTS.values() else f"{err['pointer'] or 'the whole'} "
        firsts.setdefault(part, where + err["message"])
    label = {"configuration": f"configuration of {release.name} {release.version}"}
    shown = [f"{label.get(p, p)} ({firsts[p]})" for p in _PART_ORDER if p in firsts]
    return "Invalid " + ", ".join(shown) + "."


_PARTS = {"/version": "version", "/endpoint_url": "endpoint URL"}
_PART_ORDER = ("version", "configuration", "endpoint URL")


def list_revisions(installation_id: int, *, actor: User) -> list[InstallationRevision]:
    """Newest first. Raises NotFound."""
    inst = get_installation(installation_id, actor=actor)
    return list(
        db.session.execute(
            sa.select(InstallationRevision)
            .where(InstallationRevision.installation_id == inst.id)
            .order_by(InstallationRevision.revision.desc())
        ).scalars()
    )


def rollback_installation(
    installation_id: int,
    revision: int | None = None,
    *,
    actor: User,
    expected_revision: int | None = None,
) -> tuple[Installation, int]:
    """Restore an earlier revision (default: the one before the current) as a new revision,
    after validating its release, configuration and endpoint again; if `expected_revision`
    is given, only while the installation is still at it. Returns (the installation, the
    revision restored). Raises NotFound, Conflict (stale revision, a dependent would
    break), ValidationFailed (every configuration and endpoint error at once)."""
    inst = _active(installation_id, actor)
    _check_expected_revision(inst, expected_revision)
    target_number = revision if revision is not None else inst.revision - 1
    target = db.session.execute(
        sa.select(InstallationRevision).where(
            InstallationRevision.installation_id == inst.id,
            InstallationRevision.revision == target_number,
        )
    ).scalar()
    if target is None or target_number >= inst.revision:
        raise ValidationFailed(
            "No such earlier revision.",
            errors=[{"pointer": "/revision", "message": f"must be below {inst.revision}"}],
        )
    # Checked as a change to the revision's version, configuration and endpoint: the
    # outbound guard may refuse an endpoint it once took, a release may be gone.
    checked = _check_changes(
        inst,
        {
            "version": target.release.version,
            "config": target.config if target.config is not None else {},
            "endpoint_url": target.endpoint_url,
        },
    )
    if checked.errors:
        raise ValidationFailed(
            f"Revision {target.revision} cannot be restored. "
            + _summary(checked.errors, checked.release),
            errors=checked.errors,
        )
    release = checked.release
    inst = _apply(
        inst,
        release=release,
        config=checked.config,
        endpoint_url=checked.endpoint_url,
        base_revision=inst.revision,
        reason="rollback",
        actor=actor,
        event_type=events.INSTALLATION_ROLLED_BACK,
        data={
            "to_revision": target.revision,
            "from_version": inst.release.version,
            "to_version": release.version,
        },
    )
    return inst, target.revision


def _dependents_graph(company) -> dict[str, set[str]]:
    """module name → names of installed modules that require it."""
    installed = installed_modules(company)
    graph: dict[str, set[str]] = {name: set() for name in installed}
    for name, inst in installed.items():
        for dep, _constraint in required_module_dependencies(inst.release.manifest):
            if dep in graph:
                graph[dep].add(name)
    return graph


def dependents_of(inst: Installation) -> list[str]:
    """Every installed module that needs this one, directly or through others."""
    graph = _dependents_graph(inst.company)
    seen, stack = set(), [inst.module_name]
    while stack:
        for dependent in graph.get(stack.pop(), ()):
            if dependent not in seen:
                seen.add(dependent)
                stack.append(dependent)
    seen.discard(inst.module_name)
    return sorted(seen)


def uninstall_installation(
    installation_id: int, *, actor: User, cascade: bool = False
) -> list[Installation]:
    """Uninstall (the record and its configuration stay). Refused while dependents exist
    unless `cascade`, which uninstalls them first, in reverse dependency order, in the same
    transaction. Raises NotFound, Conflict (listing the dependents)."""
    inst = _active(installation_id, actor)
    dependents = dependents_of(inst)
    if dependents and not cascade:
        raise Conflict(
            f"{', '.join(dependents)} depend on {inst.module_name}; uninstall them first "
            "or use cascade.",
            errors=[{"pointer": "/cascade", "message": f"needed by {d}"} for d in dependents],
            extra={"dependents": dependents},
        )
    installed = installed_modules(inst.company)
    graph = _dependents_graph(inst.company)
    order = _dependents_first([*dependents, inst.module_name], graph)
    company_id, removed = inst.company_id, []
    with unit_of_work("The installation changed meanwhile; reload and try again."):
        lock_company_installations(company_id)
        for name in order:
            target = installed[name]
            done = db.session.execute(
                sa.update(Installation)
                .where(
                    Installation.id == target.id,
                    Installation.status == InstallationStatus.INSTALLED,
                )
                .values(
                    status=InstallationStatus.UNINSTALLED,
                    uninstalled_at=utcnow(),
                    updated_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if done != 1:
                raise Conflict(f"{name} changed meanwhile; reload and try again.")
            events.record_event(
                events.INSTALLATION_UNINSTALLED,
                actor=actor,
                company=inst.company.slug,
                module=target.release,
                installation_id=target.id,
                data={"cascade": name != inst.module_name, "revision": target.revision},
            )
            removed.append(target)
        # Dependents are those read before this transaction; one installed meanwhile would
        # be left without what it needs.
        unmet = unmet_requirements(company_id, set(order))
        if unmet:
            raise Conflict(
                "Installed meanwhile, and would be broken: " + " ".join(unmet),
                errors=[{"pointer": "/cascade", "message": u} for u in unmet],
            )
    for target in removed:
        db.session.refresh(target)
    return removed


def _dependents_first(names: list[str], graph: dict[str, set[str]]) -> list[str]:
    """Order so that each module comes after everything that depends on it (cycles: any
    order among themselves)."""
    wanted, order, visiting = set(names), [], set()

    def visit(name: str) -> None:
        if name in order or name in visiting:
            return
        visiting.add(name)
        for dependent in sorted(graph.get(name, ())):
            if dependent in wanted:
                visit(dependent)
        visiting.discard(name)
        order.append(name)

    for name in sorted(wanted):
        visit(name)
    return order


def runtime_installation(installation_id: int, *, actor: User) -> Installation:
    """For the module's runtime: the owning company's tokens only (platform admins: 403).
    Raises NotFound, PermissionDenied."""
    if is_admin(actor):
        raise PermissionDenied("Runtime configuration is for the owning company's tokens.")
    inst = db.session.get(Installation, installation_id)
    if (
        inst is None
        or inst.company_id != actor.company_id
        or inst.status != InstallationStatus.INSTALLED
    ):
        raise NotFound("No such installation.")
    return inst


def record_heartbeat(installation_id: int, status: str, message, *, actor: User) -> None:
    """Store what a runtime reports; a change of status is history and an event. Raises
    NotFound, PermissionDenied, ValidationFailed."""
    from portal.services.health.records import record_health

    if status not in REPORTED_HEALTH:
        raise ValidationFailed(
            "Unknown status.",
            errors=[{"pointer": "/status", "message": "healthy, degraded or unhealthy"}],
        )
    if message is not None and not isinstance(message, str):
        raise ValidationFailed(
            "Invalid message.", errors=[{"pointer": "/message", "message": "must be text"}]
        )
    inst = runtime_installation(installation_id, actor=actor)
    with unit_of_work():
        # Read the health afresh under a row lock: replicas of a runtime report at the same
        # moment, and each comparing against the status it read before the others committed
        # recorded one change (history row and event) per heartbeat on PostgreSQL. (SQLite:
        # the unit of work already holds the write lock; FOR UPDATE is not rendered.)
        inst = db.session.execute(
            sa.select(Installation)
            .where(Installation.id == inst.id, Installation.status == InstallationStatus.INSTALLED)
            .with_for_update(of=Installation)
            .execution_options(populate_existing=True)
        ).scalar()
        if inst is None:  # uninstalled meanwhile
            raise NotFound("No such installation.")
        inst.last_heartbeat_at = utcnow()
        record_health(inst, status, (message or "")[:500] or None, None, "heartbeat", actor=actor)
