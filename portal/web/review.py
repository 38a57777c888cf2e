"""The approval queue: pending releases oldest first; each opens in place to its check
report and is approved, or rejected with a reason, without leaving the page."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, flash, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import Length

from portal.models import ModuleRelease, ReleaseStatus
from portal.models.base import utcnow
from portal.services.accounts.access import may_review
from portal.services.errors import ValidationFailed
from portal.services.paging import Page
from portal.services.review import decisions
from portal.services.review import report as reports
from portal.web import htmx
from portal.web.forms import ActionForm, ServiceErrorsMixin
from portal.web.pager import page_in_range, page_number

bp = Blueprint("queue", __name__)

PER_PAGE = 20


class RejectForm(ServiceErrorsMixin, FlaskForm):
    """Shape only: whether the reason says something is the review service's rule."""

    reason = TextAreaField("Reason for rejecting", validators=[Length(max=2000)])


def _require_admin() -> None:
    if not may_review(current_user):
        abort(403)


def _publisher() -> str | None:
    """The queue's publisher filter: a query argument, or a hidden field of the forms."""
    return (request.values.get("publisher") or "").strip() or None


def _list_page() -> int:
    """The page of the queue being worked: a query argument, or a hidden field."""
    return page_number(request.values)


def _queue(publisher: str | None, page: int) -> Page:
    """That page of the queue, or its last page when `page` is past the end."""
    return page_in_range(
        lambda n: decisions.pending_releases(
            actor=current_user, publisher=publisher, page=n, per_page=PER_PAGE
        ),
        page,
    )


def _kept_page(page: int) -> int | None:
    """The page for links and hidden fields: none for the first."""
    return page if page > 1 else None


def _queue_url(publisher: str | None, page: int) -> str:
    return url_for("queue.index", publisher=publisher, page=_kept_page(page))


def _list_context(publisher: str | None, releases: Page) -> dict:
    """What the list (and what links back to it) needs: the page, the filter and the
    pager's links, which keep the filter."""
    return {
        "releases": releases,
        "publisher": publisher,
        "page": _kept_page(releases.page),
        "page_url": lambda n: _queue_url(publisher, n),
    }


@bp.get("/admin/queue")
@login_required
def index():
    _require_admin()
    publisher = _publisher()
    return htmx.render(
        "queue/index.html",
        block="queue",
        publishers=reports.queue_publishers(actor=current_user, selected=publisher),
        **_list_context(publisher, _queue(publisher, _list_page())),
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
    release = decisions.change_status(module_id, ReleaseStatus.APPROVED, actor=current_user)
    flash(f"Approved {release.name} {release.version}.", "success")
    return _decided(release)


@bp.post("/admin/queue/<int:module_id>/reject")
@login_required
def reject(module_id: int):
    _require_admin()
    form = RejectForm()
    if form.validate_on_submit():
        try:
            release = decisions.change_status(
                module_id, ReleaseStatus.REJECTED, form.reason.data, actor=current_user
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
            page=_kept_page(_list_page()),
        )
        return htmx.retarget(resp, f"#reject-form-{module_id}", "outerHTML")
    return _detail(module_id, form, status=422)


def _detail(module_id: int, form: RejectForm, status: int = 200):
    report = reports.release_report(module_id, actor=current_user)
    return htmx.render(
        "queue/show.html",
        block="detail",
        status=status,
        report=report,
        release=report.release,
        action_form=ActionForm(),
        form=form,
        publisher=_publisher(),
        page=_kept_page(_list_page()),
    )


def _decided(release: ModuleRelease):
    """htmx: the release's item goes away (an empty main swap), the queue's count, the
    navigation badge, the pager and the focus (the next release's Review link) follow out
    of band, and the release that moves up into the page is appended to it. Without
    JavaScript, or when the page is left empty: back to the queue (303, or HX-Redirect),
    the flash shown there."""
    publisher, page = _publisher(), _list_page()
    if not htmx.is_partial():
        return htmx.redirect(_queue_url(publisher, page))
    remaining = _queue(publisher, page)
    if remaining.page != page:  # the decision emptied the last page: the one before it
        return htmx.redirect(_queue_url(publisher, remaining.page))
    return htmx.render(
        "queue/_decided.html",
        block="decided",
        next_release=_next_after(release, remaining.items),
        moved_up=_moved_up(remaining),
        count=decisions.pending_count(),
        **_list_context(publisher, remaining),
    )


def _next_after(release: ModuleRelease, remaining: list[ModuleRelease]):
    """The release listed after the decided one (else the one before it), for focus."""
    key = (release.created_at, release.id)
    later = [r for r in remaining if (r.created_at, r.id) > key]
    if later:
        return later[0]
    return remaining[-1] if remaining else None


def _moved_up(remaining: Page) -> ModuleRelease | None:
    """The release the next page gave up to fill this one: the page's last, when it is
    full (before the decision it was the next page's first)."""
    if remaining.items and len(remaining.items) == remaining.per_page:
        return remaining.items[-1]
    return None


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
