"""Review in the API: approve, reject or deprecate a release."""

from __future__ import annotations

from flask import jsonify

from portal.api import schemas
from portal.api.base import bp, current_actor, validated_body
from portal.api.openapi import document
from portal.api.serializers import module_json
from portal.services.review import decisions


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
    change = validated_body()
    status, reason = change["status"], change.get("reason")
    release = decisions.change_status(module_id, status, reason, actor=actor)
    return jsonify(module_json(release))
