"""Upgrade or downgrade an installed module from the control room: choose a version among
those the company may install, see the resolver's plan for `=version` first (or why there is
none: 409 naming the dependent that would break, 422 otherwise), then confirm. The
confirmation carries the revision the plan was shown for, so a change made meanwhile is a
409, not an overwrite."""

from __future__ import annotations

from flask import flash, request
from flask_login import current_user, login_required

from portal.models import InstallationStatus
from portal.services.errors import Conflict, TooLarge, ValidationFailed
from portal.services.installations import lifecycle
from portal.services.installations.upgrades import version_choices
from portal.services.installations.version_change import preview_version_change
from portal.web.installations.shared import (
    ONE,
    bp,
    done,
    index_url,
    owned,
    panel,
    posted_int,
    require_active,
)

TEMPLATE = "installations/_version.html"


@bp.get(ONE + "/version")
@login_required
def version(slug: str, installation_id: int):
    """The version menu; with ?version=, the plan for it (or the 409/422 explanation)."""
    company, inst = owned(slug, installation_id)
    require_active(inst)
    chosen = (request.args.get("version") or "").strip() or None
    result = preview_version_change(inst.id, chosen, actor=current_user) if chosen else None
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
        still = chosen and inst.status == InstallationStatus.INSTALLED
        result = preview_version_change(inst.id, chosen, actor=current_user) if still else None
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
    choices = version_choices(inst) if inst.status == InstallationStatus.INSTALLED else []
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
