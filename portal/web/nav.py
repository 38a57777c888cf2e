"""The navigation each role sees (the spec's page table, through services/accounts/access)."""

from __future__ import annotations

from flask import url_for

from portal.models import User
from portal.services.accounts import access


def _anyone(user: User) -> bool:
    return True


# (label, endpoint, key, who sees it)
NAV_ITEMS = (
    ("Marketplace", "main.index", "marketplace", _anyone),
    ("Publish", "publish.index", "publish", access.sees_publish_page),
    ("Review queue", "queue.index", "queue", access.may_review),
    ("Installations", "installations.index", "installations", access.sees_installations_page),
    ("Activity", "activity.index", "activity", access.sees_activity_page),
    ("API tokens", "tokens.index", "tokens", _anyone),
)


def navigation(user: User) -> list[dict]:
    """Links in the top bar for this user's role, with live counts where they matter."""
    items = []
    for label, endpoint, key, sees in NAV_ITEMS:
        if not sees(user):
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
