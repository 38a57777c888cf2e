"""The dry run of a version change: what moving an installed module to exactly one version
would do, checked as lifecycle.update_installation will check it, with nothing changed.
Pages show it before the change is confirmed (the change itself is lifecycle's)."""

from __future__ import annotations

from dataclasses import dataclass, field

from portal.lib.versions import InvalidVersion, Version
from portal.models import InstallationStatus, User
from portal.services.catalog import queries as catalog
from portal.services.errors import Conflict, TooLarge, ValidationFailed
from portal.services.installations.installs import check_config, get_installation
from portal.services.installations.resolver import NoPlan, Plan, resolve


@dataclass
class VersionChangePreview:
    """What moving to `version` would do: the plan, or why it cannot be done (`status`:
    409 a dependent would break, 422 otherwise)."""

    version: str
    direction: str = ""  # upgrade | downgrade | same ("" when the version is invalid)
    plan: Plan | None = None
    status: int = 200
    message: str = ""
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.plan is not None and self.direction != "same"


def preview_version_change(
    installation_id: int, version: str, *, actor: User
) -> VersionChangePreview:
    """The plan for moving the installation to exactly `version`: the resolver's plan with
    nothing else changing, and the current configuration against the new release's
    schema. Nothing changes. Raises NotFound, Conflict (the module is uninstalled)."""
    inst = get_installation(installation_id, actor=actor)
    name = inst.module_name
    if inst.status != InstallationStatus.INSTALLED:
        raise Conflict(f"{name} is uninstalled; install it again first.")
    try:
        target = Version.parse(version)
    except InvalidVersion as exc:
        return VersionChangePreview(
            version, status=422, message="That is not a version.", reasons=[str(exc)]
        )
    current = Version.parse(inst.release.version)
    direction = "upgrade" if target > current else "downgrade" if target < current else "same"
    if direction == "same":
        return VersionChangePreview(version, direction, message=f"{name} is at {version} already.")
    try:
        plan = resolve(inst.company, name, f"={version}")
    except NoPlan as exc:
        return VersionChangePreview(
            version,
            direction,
            status=409 if exc.involves_installed else 422,
            message=f"{name} cannot {direction} to {version}:",
            reasons=exc.reasons,
        )
    if plan.extra_changes:
        needed = ", ".join(f"{s.module} {s.version} ({s.action})" for s in plan.extra_changes)
        message = f"{name} {version} needs other modules to change first: {needed}."
        return VersionChangePreview(version, direction, plan, 422, message)
    step = next(s for s in plan.steps if s.module == name)
    release = catalog.get_release(step.module_id, actor=actor)
    try:
        check_config(release, inst.config)
    except (ValidationFailed, TooLarge) as exc:
        reasons = [f"{e['pointer'] or 'The configuration'} {e['message']}" for e in exc.errors]
        message = f"The current configuration does not fit {name} {version}: {exc.message}"
        return VersionChangePreview(version, direction, plan, 422, message, reasons)
    return VersionChangePreview(version, direction, plan)
