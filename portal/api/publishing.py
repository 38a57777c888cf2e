"""Publishing in the API: upload a release, edit or resubmit it, delete it, check a manifest."""

from __future__ import annotations

from flask import current_app, jsonify, request, url_for

from portal.api import schemas
from portal.api.base import bp, created, current_actor, validated_body
from portal.api.openapi import document
from portal.api.serializers import module_json
from portal.http.uploads import submission_from_request
from portal.services.errors import DomainError, UnsupportedType
from portal.services.publishing import releases
from portal.services.publishing.manifest import manifest_schema
from portal.services.publishing.submissions import read_submission


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
    release = releases.publish_release(_submission(), actor=actor)
    return created(module_json(release), url_for("api.get_module", module_id=release.id))


@bp.put("/modules/<int:module_id>")
@document(
    summary="Edit metadata, or resubmit a pending or rejected release",
    tags=["Modules"],
    request=schemas.MODULE_UPDATE,
    responses={
        200: schemas.MODULE,
        400: "Unreadable body or YAML (with line and column).",
        403: "Not the publisher's developer nor an admin.",
        404: "Absent, or not visible to the caller.",
        409: "A manifest change on an approved release.",
        413: "The package or manifest is too large.",
        415: "Not multipart or JSON, or the package is not a zip or tar.gz.",
        422: "Invalid changes or manifest (pointers into the body or the manifest).",
    },
)
def update_module(module_id: int):
    actor = current_actor()
    if request.mimetype == "multipart/form-data":
        changes = {k: request.form.get(k) for k in releases.EDITABLE_FIELDS}
        sub = submission_from_request(request)
    elif request.mimetype == "application/json":
        fields = validated_body()
        changes = {k: fields.get(k) for k in releases.EDITABLE_FIELDS}
        sub = submission_from_request(request, json_body=fields)
    else:
        raise UnsupportedType("Send multipart/form-data or application/json.")
    release = releases.update_release(module_id, changes, sub, actor=actor)
    return jsonify(module_json(release))


@bp.delete("/modules/<int:module_id>")
@document(
    summary="Soft-delete a release (kept for audit, hidden)",
    tags=["Modules"],
    responses={204: "Deleted.", 403: "Not the publisher nor an admin.", 404: "Absent."},
)
def delete_module(module_id: int):
    releases.delete_release(module_id, actor=current_actor())
    return "", 204


@bp.post("/modules/validate-manifest")
@document(
    summary="Validate a manifest and/or package; nothing is stored",
    tags=["Modules"],
    request=schemas.MODULE_UPLOAD,
    description="Mistakes in the manifest, the package or the body itself are reported in "
    "a 200 answer (`valid: false`, with pointers), never as a 422.",
    responses={
        200: schemas.VALIDATION_RESULT,
        400: "Unreadable body or YAML (with line and column).",
        413: "Too large.",
        415: "Not a zip or tar.gz, or not multipart/JSON.",
        422: None,
    },
)
def validate_manifest():
    current_actor()
    try:
        checked = read_submission(_submission())
    except DomainError as exc:
        if exc.status != 422:
            raise
        return jsonify(
            {"valid": False, "errors": exc.errors or [{"pointer": "", "message": exc.message}]}
        )
    return jsonify({"valid": True, "errors": [], "manifest": checked.manifest})


def _submission():
    """The upload as a Submission: a JSON body as `@document` validated it, else the form."""
    json_body = validated_body() if request.mimetype == "application/json" else None
    return submission_from_request(request, json_body=json_body)


@bp.get("/schemas/manifest.json")
@document(
    summary="The manifest's JSON Schema, for editors",
    tags=["Modules"],
    auth=False,
    responses={
        200: {
            "description": "A JSON Schema (draft 2020-12).",
            "content": {"application/schema+json": {"schema": {"type": "object"}}},
        }
    },
)
def manifest_json_schema():
    resp = jsonify(manifest_schema())
    resp.mimetype = "application/schema+json"
    resp.headers["Cache-Control"] = f"public, max-age={3600 if not current_app.debug else 0}"
    return resp
