"""The navigation each role sees."""

from __future__ import annotations

from flask import url_for

from portal.models import User


def navigation(user: User) -> list[dict]:
    """Links in the top bar, by role; later pages add themselves here."""
    items = [{"label": "Marketplace", "url": url_for("main.index"), "key": "marketplace"}]
    if user.role == "developer":
        items.append({"label": "Publish", "url": url_for("publish.index"), "key": "publish"})
    items.append({"label": "API tokens", "url": url_for("tokens.index"), "key": "tokens"})
    return items
