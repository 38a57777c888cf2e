"""A module's page: description, versions the viewer may see, dependencies, the
configuration it expects, the package with its digest, and the install button."""

from __future__ import annotations

from flask import Blueprint, abort, request, url_for
from flask_login import current_user, login_required

from portal.http.downloads import package_response
from portal.services.accounts.access import sees_install_button
from portal.services.catalog import cards
from portal.services.catalog import queries as catalog
from portal.services.publishing import releases
from portal.web import htmx

bp = Blueprint("modules", __name__)


@bp.get("/modules/<name>")
@login_required
def show(name: str):
    _require_text(name)
    releases = catalog.releases_named(name, actor=current_user)
    if not releases:
        abort(404)
    selected = request.args.get("version")
    release = (
        next((r for r in releases if r.version == selected), None)
        if selected
        else cards.default_release(releases)
    )
    if release is None:
        abort(404)
    return htmx.render(
        "modules/show.html",
        releases=releases,
        release=release,
        name=name,
        config=cards.config_fields((release.manifest or {}).get("config_schema")),
        usage=cards.usage_counts([name])[name],
        install=_install_action(release),
    )


@bp.get("/modules/<name>/<version>/package")
@login_required
def package(name: str, version: str):
    """The package bytes for the signed-in user (the API's download is bearer-only)."""
    _require_text(name, version)
    found = cards.release_by_version(name, version, actor=current_user)
    release, path = releases.package_path(found.id, actor=current_user)
    return package_response(release, path)


def _require_text(*values: str) -> None:
    """404 for a NUL character in the path: no name or version holds one, and PostgreSQL
    refuses to compare text with it (an error, not "no such module")."""
    if any("\x00" in value for value in values):
        abort(404)


def _install_action(release) -> dict | None:
    """Where the page's "Install" leads, for those who see the button."""
    if not sees_install_button(current_user, release):
        return None
    return {"url": url_for("installations.plan", name=release.name, version=release.version)}
