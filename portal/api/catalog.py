"""The catalogue in the API: list and read releases, download their packages."""

from __future__ import annotations

from flask import jsonify, request

from portal.api import schemas
from portal.api.base import bp, current_actor
from portal.api.openapi import PAGING_PARAMETERS, document, page_of, query_parameter
from portal.api.serializers import module_json, page_json
from portal.http.downloads import package_response
from portal.services.catalog import queries as catalog
from portal.services.paging import parse_paging
from portal.services.publishing import releases

# A list's releases as api.md shapes them, kept per catalog generation (services/catalog/cache).
MODULE_JSON = catalog.Presentation("module-json", module_json)

LIST_FILTERS = (
    "name",
    "status",
    "visibility",
    "publisher",
    "category",
    "tag",
    "sort",
    "q",
    "latest",
)


@bp.get("/modules/")
@bp.get("/modules", endpoint="list_modules_no_slash")
@document(
    summary="List releases the caller may see",
    tags=["Modules"],
    parameters=[
        query_parameter("q", "Full-text search over name, display name, description, tags."),
        query_parameter("name", "Exact module name."),
        query_parameter("status", "pending, approved, rejected, deprecated (deleted: admins)."),
        query_parameter("visibility", "public or private."),
        query_parameter("publisher", "Publisher company slug."),
        query_parameter("category", "Category."),
        query_parameter("tag", "A tag."),
        query_parameter("latest", "true: per name, the newest approved (stable preferred)."),
        query_parameter("sort", "name, -created_at or -version."),
        *PAGING_PARAMETERS,
    ],
    responses={200: page_of(schemas.MODULE), 422: "An unknown filter value or bad paging."},
)
def list_modules():
    actor = current_actor()
    page, per_page = parse_paging(request.args)
    filters = {key: request.args.get(key) or None for key in LIST_FILTERS}
    result = catalog.list_releases(
        actor=actor, page=page, per_page=per_page, present=MODULE_JSON, **filters
    )
    return jsonify(page_json(result, lambda item: item))


@bp.get("/modules/<int:module_id>")
@document(
    summary="One release",
    tags=["Modules"],
    responses={200: schemas.MODULE, 404: "Absent, or not visible to the caller."},
)
def get_module(module_id: int):
    return jsonify(module_json(catalog.get_release(module_id, actor=current_actor())))


@bp.get("/modules/<int:module_id>/package")
@document(
    summary="Download the exact bytes uploaded",
    tags=["Modules"],
    parameters=[
        {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
    ],
    responses={
        200: {
            "description": "The package",
            "headers": {
                "ETag": {"schema": {"type": "string"}, "description": "The quoted SHA-256."},
                "Content-Disposition": {"schema": {"type": "string"}},
            },
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        },
        304: "Not modified (If-None-Match matched).",
        404: "Absent, not visible, or no package.",
    },
)
def download_package(module_id: int):
    release, path = releases.package_path(module_id, actor=current_actor())
    return package_response(release, path)
