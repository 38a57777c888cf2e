"""The activity page: the event log, newest first, scoped as the events API is (platform
admins all, company admins their company's), filtered through htmx with the URL kept."""

from __future__ import annotations

from flask import Blueprint, abort, request, url_for
from flask_login import current_user, login_required

from portal.events import EVENT_TYPES
from portal.services.accounts.access import is_admin, sees_activity_page
from portal.services.activity import queries as activity
from portal.services.catalog import cards
from portal.web import htmx
from portal.web.pager import page_args

bp = Blueprint("activity", __name__)

PER_PAGE = 25


def _filters(args) -> dict[str, str]:
    """type, module and company from the URL; an unknown type is ignored, and the company
    filter is for platform admins only (others are scoped to their own company anyway)."""
    type_ = args.get("type") or ""
    return {
        "type": type_ if type_ in EVENT_TYPES else "",
        "module": cards.clean_arg(args.get("module")),
        "company": cards.clean_arg(args.get("company")) if is_admin(current_user) else "",
    }


@bp.get("/activity")
@login_required
def index():
    if not sees_activity_page(current_user):
        abort(403)
    filters = _filters(request.args)
    page, per_page = page_args(request.args, PER_PAGE)
    events = activity.list_events(
        actor=current_user,
        page=page,
        per_page=per_page,
        type_=filters["type"] or None,
        module=filters["module"] or None,
        company=filters["company"] or None,
    )
    keep = {k: v for k, v in filters.items() if v}
    return htmx.render(
        "activity/index.html",
        block="events",
        events=events,
        filters=filters,
        choices=None if htmx.is_partial() else cards.activity_choices(actor=current_user),
        page_url=lambda n: url_for("activity.index", **keep, page=n),
    )
