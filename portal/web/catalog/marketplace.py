"""The marketplace: search as you type, filters, sort and paging, all kept in the URL."""

from __future__ import annotations

from flask import Blueprint, request, url_for
from flask_login import current_user, login_required

from portal.services.catalog import cards
from portal.web import htmx
from portal.web.pager import page_args

bp = Blueprint("main", __name__)


@bp.get("/")
@login_required
def index():
    filters = cards.market_filters(request.args)
    page, per_page = page_args(request.args)
    results = cards.search_cards(filters, actor=current_user, page=page, per_page=per_page)
    keep = filters.as_args() | ({"per_page": per_page} if per_page != 20 else {})
    return htmx.render(
        "main/index.html",
        block="results",
        filters=filters,
        results=results,
        usage=cards.usage_counts([r.name for r in results.items]),
        # The filter menus are outside the results block: a fragment does not need them.
        choices=None if htmx.is_partial() else cards.filter_choices(actor=current_user),
        sorts=cards.SORT_CHOICES,
        page_url=lambda n: url_for("main.index", **keep, page=n),
    )
