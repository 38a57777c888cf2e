"""A module's page: its releases the viewer may see, with their statuses."""

from __future__ import annotations

from flask import Blueprint, abort, request
from flask_login import current_user, login_required

from portal.services import catalog
from portal.web import htmx

bp = Blueprint("modules", __name__)


@bp.get("/modules/<name>")
@login_required
def show(name: str):
    releases = catalog.releases_named(name, actor=current_user)
    if not releases:
        abort(404)
    selected = request.args.get("version")
    current = next((r for r in releases if r.version == selected), releases[0])
    return htmx.render("modules/show.html", releases=releases, release=current, name=name)
