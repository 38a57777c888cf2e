"""Installations after the install: changes, revisions, rollback, uninstall, runtime."""

from __future__ import annotations

from flask import jsonify, request

from portal.api import schemas
from portal.api.base import bp, current_actor, query_flag, validated_body
from portal.api.openapi import document
from portal.api.serializers import installation_json, revision_json, rfc3339
from portal.services.errors import ValidationFailed
from portal.services.health import probes
from portal.services.installations import lifecycle
from portal.services.installations.revisions import revision_changes
from portal.services.installations.upgrades import upgrade_available

_NOT_FOUND = "Absent or another company's."


def _revision_from(fields: dict, field: str = "revision") -> int | None:
    """The revision an edit is based on: If-Match header or `field` in the body (a PUT's
    `revision`; a rollback's `expected_revision`, its `revision` being the target)."""
    raw = request.headers.get("If-Match", "").strip().strip('"').removeprefix("W/").strip('"')
    value = raw or fields.get(field)
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not str(value).isdigit():
        raise ValidationFailed(
            "Invalid revision.", errors=[{"pointer": f"/{field}", "message": "a revision number"}]
        )
    return int(value)


IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "description": 'The revision the change is based on, as "3" or W/"3": 409 if it is stale.',
    "schema": {"type": "string"},
}


@bp.put("/installations/<int:installation_id>")
@document(
    summary="Change configuration, endpoint or version (a new revision)",
    tags=["Installations"],
    parameters=[IF_MATCH],
    request={"application/json": schemas.INSTALLATION_UPDATE},
    responses={
        200: schemas.INSTALLATION,
        404: _NOT_FOUND,
        409: "Based on a stale revision, a dependent would break, or uninstalled.",
        413: "The configuration is too large.",
        422: "Invalid configuration, version or endpoint.",
    },
)
def update_installation(installation_id: int):
    actor = current_actor()
    fields = validated_body()
    changes = {k: fields[k] for k in ("config", "version", "endpoint_url") if k in fields}
    inst = lifecycle.update_installation(
        installation_id, changes, actor=actor, expected_revision=_revision_from(fields)
    )
    return jsonify(installation_json(inst, upgrade_available(inst)))


@bp.delete("/installations/<int:installation_id>")
@document(
    summary="Uninstall (refused while dependents exist, unless cascade=true)",
    tags=["Installations"],
    parameters=[{"name": "cascade", "in": "query", "schema": {"type": "boolean"}}],
    responses={
        204: "Uninstalled.",
        404: _NOT_FOUND,
        409: "Dependents exist (listed), or uninstalled already.",
        422: "`cascade` is not true or false.",
    },
)
def uninstall(installation_id: int):
    actor = current_actor()
    cascade = query_flag("cascade")
    lifecycle.uninstall_installation(installation_id, actor=actor, cascade=cascade)
    return "", 204


@bp.get("/installations/<int:installation_id>/revisions")
@document(
    summary="The installation's revisions, newest first (secrets masked)",
    tags=["Installations"],
    responses={200: {"type": "array", "items": schemas.REVISION}, 404: _NOT_FOUND},
)
def revisions(installation_id: int):
    entries = revision_changes(installation_id, actor=current_actor())
    return jsonify([revision_json(e) for e in entries])


@bp.post("/installations/<int:installation_id>/rollback")
@document(
    summary="Restore an earlier revision (default: the previous one)",
    tags=["Installations"],
    parameters=[IF_MATCH],
    request={"application/json": schemas.ROLLBACK},
    body_optional=True,
    responses={
        200: schemas.INSTALLATION,
        404: _NOT_FOUND,
        409: "Based on a stale revision, a dependent would break, uninstalled, or the "
        "installation changed meanwhile.",
        422: "No such revision, its configuration no longer validates, or an invalid "
        "expected revision.",
    },
)
def rollback(installation_id: int):
    actor = current_actor()
    fields = validated_body()  # an empty body means "the previous revision"
    revision = fields.get("revision")
    expected = _revision_from(fields, "expected_revision")
    inst, _restored = lifecycle.rollback_installation(
        installation_id, revision, actor=actor, expected_revision=expected
    )
    return jsonify(installation_json(inst, upgrade_available(inst)))


@bp.post("/installations/<int:installation_id>/health-check")
@document(
    summary="Check the installation's endpoint now (recorded as its health)",
    description=(
        "GET endpoint_url + the manifest's health_check.path (default /health) within its "
        "timeout (default 3 s), no redirects followed, through the outbound guard. 2xx is "
        "healthy, 2xx slower than half the timeout degraded, anything else unhealthy with "
        "the reason as the message."
    ),
    tags=["Installations"],
    responses={
        200: schemas.HEALTH_CHECK_RESULT,
        404: _NOT_FOUND,
        409: "The installation has no endpoint_url (or is uninstalled).",
    },
)
def health_check(installation_id: int):
    result = probes.check_installation(installation_id, actor=current_actor())
    return jsonify(
        {
            "status": result.status,
            "latency_ms": result.latency_ms,
            "checked_at": rfc3339(result.checked_at),
            "message": result.message,
        }
    )


@bp.get("/installations/<int:installation_id>/config")
@document(
    summary="The configuration itself, secrets included, for the module's runtime",
    tags=["Runtime"],
    parameters=[{"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
    responses={
        200: {"type": "object"},
        304: "Unchanged since the ETag sent.",
        403: "Platform admins (runtime configuration is for the owning company).",
        404: _NOT_FOUND,
    },
)
def runtime_config(installation_id: int):
    inst = lifecycle.runtime_installation(installation_id, actor=current_actor())
    resp = jsonify(inst.config or {})
    resp.set_etag(f"{inst.id}-r{inst.revision}")
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp.make_conditional(request)


@bp.post("/installations/<int:installation_id>/heartbeat")
@document(
    summary="A runtime reports its health",
    tags=["Runtime"],
    request={"application/json": schemas.HEARTBEAT},
    responses={
        204: "Recorded.",
        403: "Platform admins.",
        404: _NOT_FOUND + " Or uninstalled.",
        422: "Unknown status, or an unknown field.",
    },
)
def heartbeat(installation_id: int):
    actor = current_actor()
    report = validated_body()
    lifecycle.record_heartbeat(
        installation_id, report["status"], report.get("message"), actor=actor
    )
    return "", 204
