"""The approval queue: pending releases oldest first; each opens in place to its check
report and is approved, or rejected with a reason, without leaving the page."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, flash, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import Length

from portal.models import ModuleRelease
from portal.models.base import utcnow
from portal.services import queue_report, review
from portal.services.access import is_admin
from portal.services.errors import ValidationFailed
from portal.web import htmx
from portal.web.forms import ActionForm, ServiceErrorsMixin

bp = Blueprint("queue", __name__)


class RejectForm(ServiceErrorsMixin, FlaskForm):
    """Shape only: whether the reason says something is the review service's rule."""

    reason = TextAreaField("Reason for rejecting", validators=[Length(max=2000)])


def _require_admin() -> None:
    if not is_admin(current_user):
        abort(403)


def _publisher() -> str | None:
    """The queue's publisher filter: a query argument, or a hidden field of the forms."""
    return (request.values.get("publisher") or "").strip() or None


@bp.get("/admin/queue")
@login_required
def index():
    _require_admin()
    publisher = _publisher()
    return htmx.render(
        "queue/index.html",
        block="queue",
        releases=review.pending_releases(actor=current_user, publisher=publisher),
        publishers=queue_report.queue_publishers(actor=current_user, selected=publisher),
        publisher=publisher,
    )


@bp.get("/admin/queue/<int:module_id>")
@login_required
def show(module_id: int):
    _require_admin()
    return _detail(module_id, RejectForm(formdata=None))


@bp.post("/admin/queue/<int:module_id>/approve")
@login_required
def approve(module_id: int):
    _require_admin()
    release = review.change_status(module_id, "approved", actor=current_user)
    flash(f"Approved {release.name} {release.version}.", "success")
    return _decided(release)


@bp.post("/admin/queue/<int:module_id>/reject")
@login_required
def reject(module_id: int):
    _require_admin()
    form = RejectForm()
    if form.validate_on_submit():
        try:
            release = review.change_status(
                module_id, "rejected", form.reason.data, actor=current_user
            )
        except ValidationFailed as exc:
            form.add_service_errors(exc)
        else:
            flash(f"Rejected {release.name} {release.version}: {release.status_reason}", "info")
            return _decided(release)
    if htmx.is_partial():
        # Only the form changes: the error goes next to the reason, the report stays.
        resp = htmx.render(
            "queue/_reject_form.html",
            status=422,
            form=form,
            release_id=module_id,
            publisher=_publisher(),
        )
        return htmx.retarget(resp, f"#reject-form-{module_id}", "outerHTML")
    return _detail(module_id, form, status=422)


def _detail(module_id: int, form: RejectForm, status: int = 200):
    report = queue_report.release_report(module_id, actor=current_user)
    return htmx.render(
        "queue/show.html",
        block="detail",
        status=status,
        report=report,
        release=report.release,
        action_form=ActionForm(),
        form=form,
        publisher=_publisher(),
    )


def _decided(release: ModuleRelease):
    """htmx: the release's item goes away (an empty main swap), the queue's count, the
    navigation badge and the focus (the next release's Review link) follow out of band.
    Without JavaScript: back to the queue (303), the flash shown there."""
    publisher = _publisher()
    if not htmx.is_partial():
        return htmx.redirect(url_for("queue.index", publisher=publisher))
    remaining = review.pending_releases(actor=current_user, publisher=publisher)
    return htmx.render(
        "queue/_decided.html",
        block="decided",
        releases=remaining,
        next_release=_next_after(release, remaining),
        count=review.pending_count(),
        publisher=publisher,
    )


def _next_after(release: ModuleRelease, remaining: list[ModuleRelease]):
    """The release listed after the decided one (else the one before it), for focus."""
    key = (release.created_at, release.id)
    later = [r for r in remaining if (r.created_at, r.id) > key]
    if later:
        return later[0]
    return remaining[-1] if remaining else None


@bp.app_template_filter("time_ago")
def time_ago(moment: datetime, now: datetime | None = None) -> str:
    """The time elapsed in its largest whole unit, such as "3 hours ago"."""
    seconds = int(((now or utcnow()) - moment).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "just now"


@bp.app_template_filter("file_size")
def file_size(size: int | None) -> str:
    """Bytes for people: 812 bytes, 4.2 KiB, 1.5 MiB."""
    if size is None:
        return "—"
    if size < 1024:
        return f"{size} byte{'' if size == 1 else 's'}"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}"
    return f"{size} bytes"  # not reached
