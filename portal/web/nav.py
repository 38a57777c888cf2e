"""The navigation each role sees."""

from __future__ import annotations

from flask import current_app, url_for

from portal.models import User

# (label, endpoint, key, roles that see it); a page's link appears once its blueprint exists.
NAV_ITEMS = (
    ("Marketplace", "main.index", "marketplace", ("platform_admin", "developer", "company_admin")),
    ("Publish", "publish.index", "publish", ("developer",)),
    ("Review queue", "queue.index", "queue", ("platform_admin",)),
    ("Installations", "installations.index", "installations", ("company_admin",)),
    ("Activity", "activity.index", "activity", ("platform_admin", "company_admin")),
    ("API tokens", "tokens.index", "tokens", ("platform_admin", "developer", "company_admin")),
)


def navigation(user: User) -> list[dict]:
    """Links in the top bar for this user's role, with live counts where they matter."""
    items = []
    for label, endpoint, key, roles in NAV_ITEMS:
        if user.role not in roles or endpoint not in current_app.view_functions:
            continue
        item = {"label": label, "url": _url(endpoint, user), "key": key, "badge": None}
        if key == "queue":
            from portal.services.review.decisions import pending_count

            item["badge"] = pending_count()
        items.append(item)
    return items


def _url(endpoint: str, user: User) -> str:
    if endpoint == "installations.index":
        return url_for(endpoint, slug=user.company.slug)
    return url_for(endpoint)
