"""Every error, mapped in one place: problem+json for /api/, a fragment for htmx, else a page."""

from __future__ import annotations

import logging

import redis.exceptions
from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from portal.extensions import db
from portal.services.errors import DomainError
from portal.web import htmx

log = logging.getLogger(__name__)

PROBLEM_TYPE = "https://xerpium.dev/problems/"
RETRY_AFTER_SECONDS = 5


def wants_problem_json() -> bool:
    return request.path.startswith("/api/")


def problem(
    status: int, title: str, detail: str, errors=None, headers=None, extra=None
) -> Response:
    """An RFC 9457 problem details answer."""
    body = {
        "type": PROBLEM_TYPE + title.lower().replace(" ", "-"),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    resp = jsonify(body)
    resp.status_code = status
    resp.mimetype = "application/problem+json"
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def render_error(status: int, title: str, detail: str, errors=None, headers=None, extra=None):
    """Pick the representation: problem+json, an htmx flash fragment, or an error page."""
    if wants_problem_json():
        return problem(status, title, detail, errors, headers, extra)
    if htmx.is_htmx():
        resp = htmx.render("_flash.html", status=status, category="error", message=detail)
        htmx.retarget(resp, "#flash")
    else:
        resp = Response(
            render_template("errors/error.html", status=status, title=title, detail=detail),
            status=status,
        )
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def _forget_the_transaction() -> None:
    """Roll the request's session back; on a dead connection that raises too, and the
    pool discards the connection, so nothing more is to be done."""
    try:
        db.session.rollback()
    except sa_exc.SQLAlchemyError as exc:
        log.info("rollback on a lost connection: %s", type(exc).__name__)


def register(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError):
        return render_error(
            exc.status, exc.title, exc.message, exc.errors, exc.headers, exc.extra or None
        )

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return render_error(400, "CSRF token missing or invalid", exc.description)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc):
        limit = app.config["MAX_MODULE_SIZE_MB"]
        return render_error(413, "Content too large", f"The upload exceeds {limit} MB.")

    @app.errorhandler(sa_exc.OperationalError)
    @app.errorhandler(sa_exc.InterfaceError)
    @app.errorhandler(sa_exc.TimeoutError)
    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    def outage(exc: Exception):
        # The database or Redis went away (a restart, a network cut): the client may retry,
        # and the pool reconnects by itself once the server is back.
        _forget_the_transaction()
        log.warning("service unavailable: %s: %s", type(exc).__name__, exc)
        return render_error(
            503,
            "Service unavailable",
            "The registry cannot reach its database or Redis right now; try again shortly.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @app.errorhandler(DataError)
    def unstorable_value(exc: DataError):
        # A value the database refuses (a NUL character, a number out of range) is bad
        # input, never a server error.
        _forget_the_transaction()
        log.info("refused a value the database cannot store: %s", exc.orig)
        return render_error(
            422, "Validation failed", "The request holds a value that cannot be stored."
        )

    @app.before_request
    def refuse_nul_characters():
        # PostgreSQL text cannot hold NUL; the API refuses it in the query up front (the
        # pages drop such filter values and render).
        if request.path.startswith("/api/") and "%00" in request.query_string.decode("latin-1"):
            return render_error(400, "Bad request", "NUL characters are not allowed.")
        return None

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        headers = dict(exc.get_response().headers) if exc.code == 405 else None
        allow = {"Allow": headers["Allow"]} if headers and "Allow" in headers else None
        return render_error(exc.code or 500, exc.name, exc.description or exc.name, headers=allow)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        _forget_the_transaction()
        if app.config.get("TESTING") and app.config.get("PROPAGATE_TEST_ERRORS", True):
            raise exc
        log.exception("unexpected error")
        return render_error(500, "Internal server error", "Something went wrong on our side.")
