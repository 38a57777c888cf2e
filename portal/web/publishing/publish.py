"""The developer's pages: publish a release with live validation, follow my releases,
resubmit a rejected one, start a new version from the latest."""

from __future__ import annotations

from flask import Blueprint, abort, request, url_for
from flask_login import current_user, login_required

from portal.http.uploads import submission_from_request
from portal.models import Visibility
from portal.services.accounts.access import sees_publish_page
from portal.services.catalog import queries as catalog
from portal.services.errors import DomainError
from portal.services.publishing import releases
from portal.web import htmx
from portal.web.forms import ActionForm
from portal.web.publishing.texts import errors_by_field, manifest_text_for, next_version_text

bp = Blueprint("publish", __name__)


def _manifest_field() -> str:
    """Where manifest errors belong: the package's field when only a package was sent."""
    package = request.files.get("package")
    pasted = (request.form.get("manifest") or "").strip()
    return "package" if package is not None and package.filename and not pasted else "manifest"


def _require_developer() -> None:
    if not sees_publish_page(current_user):
        abort(403)


def _page(*, status: int = 200, errors=None, manifest_text: str = "", release=None, **extra):
    return htmx.render(
        "publish/index.html",
        status=status,
        form=ActionForm(),
        errors=errors_by_field(errors, manifest_field=_manifest_field()),
        manifest_text=manifest_text,
        visibility=request.form.get(
            "visibility", release.visibility if release else Visibility.PUBLIC
        ),
        releases=catalog.releases_of_company(current_user.company_id),
        resubmit=release,
        **extra,
    )


@bp.get("/publish")
@login_required
def index():
    _require_developer()
    start_from = request.args.get("from", type=int)
    text = next_version_text(start_from, actor=current_user) if start_from else ""
    return _page(manifest_text=text)


@bp.post("/publish/validate")
@login_required
def validate():
    """Live validation while typing or picking a file: only the error slots change."""
    _require_developer()
    release_id = request.form.get("release_id", type=int)
    try:
        checked = releases.check_submission(
            submission_from_request(request), actor=current_user, resubmit_of=release_id
        )
    except DomainError as exc:
        return htmx.render(
            "publish/_validation.html",
            errors=errors_by_field(exc, manifest_field=_manifest_field()),
            checked=None,
        )
    return htmx.render("publish/_validation.html", errors=errors_by_field(None), checked=checked)


@bp.post("/publish")
@login_required
def create():
    _require_developer()
    try:
        release = releases.publish_release(submission_from_request(request), actor=current_user)
    except DomainError as exc:
        return _failed(exc)
    return htmx.redirect(url_for("modules.show", name=release.name, version=release.version))


@bp.get("/publish/releases/<int:module_id>/resubmit")
@login_required
def resubmit_form(module_id: int):
    _require_developer()
    release = releases.resubmittable_release(module_id, actor=current_user)
    # A packaged release is fixed by picking the fixed package, whose module.yaml must win;
    # a manifest-only release is fixed in the text itself.
    text = "" if release.package_sha256 else manifest_text_for(release.manifest)
    return _page(manifest_text=text, release=release)


@bp.post("/publish/releases/<int:module_id>/resubmit")
@login_required
def resubmit(module_id: int):
    _require_developer()
    release = releases.resubmittable_release(module_id, actor=current_user)
    try:
        release = releases.update_release(
            module_id, {}, submission_from_request(request), actor=current_user
        )
    except DomainError as exc:
        return _failed(exc, release=release)
    return htmx.redirect(url_for("modules.show", name=release.name, version=release.version))


def _failed(exc: DomainError, release=None):
    """htmx: the error slots only (the picked file stays picked); no JS: the whole page."""
    if htmx.is_partial():
        return htmx.render(
            "publish/_validation.html",
            status=exc.status,
            errors=errors_by_field(exc, manifest_field=_manifest_field()),
            checked=None,
        )
    return _page(
        status=exc.status,
        errors=exc,
        manifest_text=request.form.get("manifest", ""),
        release=release,
    )
