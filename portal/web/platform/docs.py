"""The API's OpenAPI document and its browsable views (Swagger UI, ReDoc), for anyone.

The viewers' assets are vendored in static/vendor/ (their versions in the file names), so
the docs work offline and no page loads anything from a CDN.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify, render_template, request

from portal.api.openapi import build_openapi, document

bp = Blueprint("docs", __name__)

SWAGGER_UI = "vendor/swagger-ui-5.35.0"
REDOC = "vendor/redoc-2.5.4.standalone.js"
_CACHE_KEY = "portal.openapi"


def openapi_document() -> dict:
    """The app's OpenAPI document, built once per app (after every blueprint is registered)."""
    cache = current_app.extensions
    if _CACHE_KEY not in cache:
        cache[_CACHE_KEY] = build_openapi(current_app)
    return cache[_CACHE_KEY]


@bp.get("/api/v1/openapi.json")
@document(
    summary="This OpenAPI document",
    description="Browsable at /docs (Swagger UI) and /redoc (ReDoc).",
    tags=["Docs"],
    auth=False,
    responses={
        200: {"type": "object", "description": "An OpenAPI 3.1 document."},
        304: "Unchanged since the `ETag` sent in `If-None-Match`.",
    },
)
def openapi_json():
    resp = jsonify(openapi_document())
    resp.add_etag()
    return resp.make_conditional(request)


def _require_docs_on() -> None:
    if not current_app.config["API_DOCS"]:
        abort(404)


@bp.get("/docs")
def swagger():
    _require_docs_on()
    return render_template("docs/swagger.html", assets=SWAGGER_UI)


@bp.get("/redoc")
def redoc():
    _require_docs_on()
    return render_template("docs/redoc.html", script=REDOC)
