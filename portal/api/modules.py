"""Module releases: publish, list, read, update or resubmit, delete, download, validate."""

from __future__ import annotations

from flask import current_app, jsonify, request, url_for

from portal.api import bp, created, current_actor, schemas
from portal.api.openapi import PAGING_PARAMETERS, document, page_of, query_parameter
from portal.api.serializers import module_json, page_json
from portal.downloads import package_response
from portal.manifest import manifest_schema
from portal.services import catalog, publishing, review
from portal.services.errors import DomainError, ValidationFailed
from portal.services.paging import parse_paging
from portal.services.submissions import read_submission
from portal.uploads import json_object, submission_from_request

# A list's releases as api.md shapes them, kept per catalog generation (catalog_cache).
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


@bp.post("/modules/")
@bp.post("/modules", endpoint="create_module_no_slash")
@document(
    summary="Publish a release (pending review)",
    tags=["Modules"],
    request=schemas.MODULE_UPLOAD,
    responses={
        201: {
            "description": "Created",
            "headers": {"Location": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": schemas.MODULE}},
        },
        400: "Unreadable body or YAML (with line and column).",
        403: "The name belongs to another company, or the role may not publish.",
        409: "The version exists, or the name is a look-alike of another company's.",
        413: "The package or manifest is too large.",
        415: "Not multipart or JSON, or the package is not a zip or tar.gz.",
        422: "Invalid manifest or package (pointers into the manifest), or sha256 mismatch.",
    },
)
def create_module():
    actor = current_actor()
    release = publishing.publish_release(submission_from_request(request), actor=actor)
    return created(module_json(release), url_for("api.get_module", module_id=release.id))


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


@bp.put("/modules/<int:module_id>")
@document(
    summary="Edit metadata, or resubmit a pending or rejected release",
    tags=["Modules"],
    request=schemas.MODULE_UPDATE,
    responses={
        200: schemas.MODULE,
        403: "Not the publisher's developer nor an admin.",
        404: "Absent, or not visible to the caller.",
        409: "A manifest change on an approved release.",
        422: "Invalid changes or manifest.",
    },
)
def update_module(module_id: int):
    actor = current_actor()
    if request.mimetype == "multipart/form-data":
        changes = {k: request.form.get(k) for k in publishing.EDITABLE_FIELDS}
        sub = submission_from_request(request)
    else:
        body = json_object(request, force=True)  # a deep body is a 422, not a 500
        changes = {k: body.get(k) for k in publishing.EDITABLE_FIELDS}
        sub = submission_from_request(request, json_body=body)
    release = publishing.update_release(module_id, changes, sub, actor=actor)
    return jsonify(module_json(release))


@bp.delete("/modules/<int:module_id>")
@document(
    summary="Soft-delete a release (kept for audit, hidden)",
    tags=["Modules"],
    responses={204: "Deleted.", 403: "Not the publisher nor an admin.", 404: "Absent."},
)
def delete_module(module_id: int):
    publishing.delete_release(module_id, actor=current_actor())
    return "", 204


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
    release, path = publishing.package_path(module_id, actor=current_actor())
    return package_response(release, path)


@bp.patch("/modules/<int:module_id>/status")
@document(
    summary="Approve, reject (with a reason) or deprecate a release",
    tags=["Modules"],
    request={"application/json": schemas.STATUS_CHANGE},
    responses={
        200: schemas.MODULE,
        403: "Not allowed: admins decide (never on their own uploads); publishers deprecate.",
        404: "Absent, or not visible to the caller.",
        409: "Not allowed from the current status, or someone else decided first.",
        422: "Unknown status, or a rejection without a reason.",
    },
)
def change_status(module_id: int):
    actor = current_actor()
    body = json_object(request, force=True)  # a deep body is a 422, not a 500
    status, reason = body.get("status"), body.get("reason")
    if not isinstance(status, str) or (reason is not None and not isinstance(reason, str)):
        raise ValidationFailed(
            "Send a status (and a reason as text).",
            errors=[{"pointer": "/status", "message": "approved, rejected or deprecated"}],
        )
    release = review.change_status(module_id, status, reason, actor=actor)
    return jsonify(module_json(release))


@bp.post("/modules/validate-manifest")
@document(
    summary="Validate a manifest and/or package; nothing is stored",
    tags=["Modules"],
    request=schemas.MODULE_UPLOAD,
    responses={
        200: schemas.VALIDATION_RESULT,
        413: "Too large.",
        415: "Not a zip or tar.gz, or not multipart/JSON.",
    },
)
def validate_manifest():
    current_actor()
    try:
        checked = read_submission(submission_from_request(request))
    except DomainError as exc:
        if exc.status != 422:
            raise
        return jsonify(
            {"valid": False, "errors": exc.errors or [{"pointer": "", "message": exc.message}]}
        )
    return jsonify({"valid": True, "errors": [], "manifest": checked.manifest})


@bp.get("/schemas/manifest.json")
@document(
    summary="The manifest's JSON Schema, for editors",
    tags=["Modules"],
    auth=False,
    responses={200: {"type": "object"}},
)
def manifest_json_schema():
    resp = jsonify(manifest_schema())
    resp.mimetype = "application/schema+json"
    resp.headers["Cache-Control"] = f"public, max-age={3600 if not current_app.debug else 0}"
    return resp
