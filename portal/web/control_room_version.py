"""Upgrade or downgrade an installed module from the control room: choose a version among
those the company may install, see the resolver's plan for `=version` first (or why there is
none: 409 naming the dependent that would break, 422 otherwise), then confirm. The
confirmation carries the revision the plan was shown for, so a change made meanwhile is a
409, not an overwrite."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import flash, request
from flask_login import current_user, login_required

from portal.models import Company, Installation
from portal.services import catalog, installations, lifecycle
from portal.services.errors import Conflict, TooLarge, ValidationFailed
from portal.services.resolver import NoPlan, Plan, resolve
from portal.versions import InvalidVersion, Version
from portal.web.control_room import (
    ONE,
    done,
    index_url,
    owned,
    panel,
    posted_int,
    require_active,
)
from portal.web.control_room_data import version_choices
from portal.web.installations import bp

TEMPLATE = "installations/_version.html"


@dataclass
class Preview:
    """What moving to `version` would do: the plan, or why it cannot be done (status)."""

    version: str
    direction: str = ""  # upgrade | downgrade | same ("" when the version is invalid)
    plan: Plan | None = None
    status: int = 200
    message: str = ""
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.plan is not None and self.direction != "same"


@bp.get(ONE + "/version")
@login_required
def version(slug: str, installation_id: int):
    """The version menu; with ?version=, the plan for it (or the 409/422 explanation)."""
    company, inst = owned(slug, installation_id)
    require_active(inst)
    chosen = (request.args.get("version") or "").strip() or None
    result = preview(company, inst, chosen) if chosen else None
    return _panel(company, inst, chosen, result, status=result.status if result else 200)


@bp.post(ONE + "/version")
@login_required
def change_version(slug: str, installation_id: int):
    """Confirm: move to the posted version as a new revision, if still based on it."""
    company, inst = owned(slug, installation_id)
    chosen = (request.form.get("version") or "").strip()
    revision, was = posted_int("revision"), inst.release.version
    try:
        if not chosen or revision is None:
            raise ValidationFailed("Choose a version and confirm its plan again.")
        inst = lifecycle.update_installation(
            inst.id, {"version": chosen}, actor=current_user, expected_revision=revision
        )
    except (Conflict, ValidationFailed, TooLarge) as exc:
        result = preview(company, inst, chosen) if chosen and inst.status == "installed" else None
        return _panel(company, inst, chosen, result, status=exc.status, error=exc)
    if inst.release.version == was:
        flash(f"{inst.module_name} is at {was} already: nothing changed.", "info")
    else:
        flash(
            f"Moved {inst.module_name} from {was} to {inst.release.version}: "
            f"revision {inst.revision}.",
            "success",
        )
    return done(company, index_url(company, inst), focus_id=inst.id)


def _panel(company, inst, chosen, result, *, status: int, error=None):
    choices = version_choices(company, inst) if inst.status == "installed" else []
    return panel(
        company,
        TEMPLATE,
        status=status,
        inst=inst,
        choices=choices,
        chosen=chosen,
        preview=result,
        error=error,
    )


def preview(company: Company, inst: Installation, version: str) -> Preview:
    """The plan for moving `inst` to exactly `version`, checked as update_installation will
    check it: the resolver's plan with nothing else changing, and the current configuration
    against the new release's schema. Nothing changes."""
    name = inst.module_name
    try:
        target = Version.parse(version)
    except InvalidVersion as exc:
        return Preview(version, status=422, message="That is not a version.", reasons=[str(exc)])
    current = Version.parse(inst.release.version)
    direction = "upgrade" if target > current else "downgrade" if target < current else "same"
    if direction == "same":
        return Preview(version, direction, message=f"{name} is at {version} already.")
    try:
        plan = resolve(company, name, f"={version}")
    except NoPlan as exc:
        return Preview(
            version,
            direction,
            status=409 if exc.involves_installed else 422,
            message=f"{name} cannot {direction} to {version}:",
            reasons=exc.reasons,
        )
    if plan.extra_changes:
        needed = ", ".join(f"{s.module} {s.version} ({s.action})" for s in plan.extra_changes)
        message = f"{name} {version} needs other modules to change first: {needed}."
        return Preview(version, direction, plan, 422, message)
    step = next(s for s in plan.steps if s.module == name)
    release = catalog.get_release(step.module_id, actor=current_user)
    try:
        installations.check_config(release, inst.config)
    except (ValidationFailed, TooLarge) as exc:
        reasons = [f"{e['pointer'] or 'The configuration'} {e['message']}" for e in exc.errors]
        message = f"The current configuration does not fit {name} {version}: {exc.message}"
        return Preview(version, direction, plan, 422, message, reasons)
    return Preview(version, direction, plan)
