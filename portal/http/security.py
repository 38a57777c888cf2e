"""Response headers that keep browsers on the safe side of every page and answer.

A strict Content-Security-Policy (only our own scripts and styles: no inline code, no eval;
htmx is configured to need neither), no framing (so approve, uninstall and token forms
cannot be clicked through another site), no MIME sniffing, no referrer off the site,
nothing private kept in caches, and HSTS in production. ReDoc alone needs inline styles
(it injects its styled-components) and a blob worker, so its page gets a wider policy.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_login import current_user

STRICT_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
# ReDoc renders with styled-components (inline <style>) and searches in a blob: worker.
REDOC_POLICY = STRICT_POLICY.replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
).replace("default-src 'self'", "default-src 'self'; worker-src 'self' blob:")
HSTS = "max-age=31536000; includeSubDomains"


def _private(resp: Response) -> bool:
    """Whether the answer holds what only its caller may see: a signed-in page, or an API
    answer to a request that carried credentials."""
    if request.path.startswith("/static/"):
        return False
    if request.path.startswith("/api/"):
        return "Authorization" in request.headers
    return bool(current_user and current_user.is_authenticated)


def register(app: Flask) -> None:
    production = app.config.get("ENVIRONMENT") == "production"

    @app.after_request
    def security_headers(resp: Response) -> Response:
        headers = resp.headers
        policy = REDOC_POLICY if request.path == "/redoc" else STRICT_POLICY
        headers.setdefault("Content-Security-Policy", policy)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if production:
            headers.setdefault("Strict-Transport-Security", HSTS)
        if _private(resp) and "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"
        return resp
