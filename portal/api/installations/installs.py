"""Installations: plan, install, list, read."""

from __future__ import annotations

from flask import jsonify, request, url_for

from portal.api import schemas
from portal.api.base import bp, created, current_actor, validated_body
from portal.api.openapi import PAGING_PARAMETERS, document, page_of, query_parameter
from portal.api.serializers import installation_json, page_json, plan_json
from portal.models import InstallationStatus
from portal.services.installations import installs
from portal.services.installations.installs import InstallRequest
from portal.services.installations.upgrades import upgrade_available, upgrades_available
from portal.services.paging import parse_paging


def install_request(fields: dict) -> InstallRequest:
    """The install body of api.md, already valid against schemas.INSTALL_REQUEST."""
    return InstallRequest(**fields)


@bp.post("/installations/plan")
@document(
    summary="The install plan, dependencies included; nothing changes",
    tags=["Installations"],
    request={"application/json": schemas.INSTALL_REQUEST},
    responses={
        200: schemas.PLAN,
        403: "Not a company admin or platform admin.",
        404: "The module or company is not visible.",
        409: "Installed already.",
        422: "No plan exists (the conflict explained), or an invalid request.",
    },
)
def plan():
    actor = current_actor()
    _company, result = installs.plan_installation(install_request(validated_body()), actor=actor)
    return jsonify(plan_json(result))


@bp.post("/installations/")
@bp.post("/installations", endpoint="install_no_slash")
@document(
    summary="Install a module for a company (all or nothing)",
    tags=["Installations"],
    request={"application/json": schemas.INSTALL_REQUEST},
    responses={
        201: schemas.INSTALL_RESULT,
        403: "Not a company admin or platform admin.",
        404: "The module or company is not visible.",
        409: "Installed already.",
        413: "The configuration is too large.",
        422: "Invalid configuration (pointers into it), or unresolvable dependencies.",
    },
)
def install():
    actor = current_actor()
    inst, deps = installs.install_module(install_request(validated_body()), actor=actor)
    upgrades = upgrades_available([inst, *deps])
    body = installation_json(inst, upgrades.get(inst.id))
    body["installed_dependencies"] = [installation_json(d, upgrades.get(d.id)) for d in deps]
    return created(body, url_for("api.get_installation", installation_id=inst.id))


@bp.get("/installations/")
@bp.get("/installations", endpoint="list_installations_no_slash")
@document(
    summary="A company's installations",
    tags=["Installations"],
    parameters=[
        query_parameter("company", "Company slug (platform admins)."),
        query_parameter("status", "installed (default), uninstalled or all."),
        query_parameter("module", "Module name."),
        query_parameter("health", "unknown, healthy, degraded or unhealthy."),
        *PAGING_PARAMETERS,
    ],
    responses={
        200: page_of(schemas.INSTALLATION),
        403: "Not a company admin or platform admin.",
        404: "No such company (platform admins' `company` filter).",
        422: "A bad filter or paging value.",
    },
)
def list_installations():
    actor = current_actor()
    page, per_page = parse_paging(request.args)
    result = installs.list_installations(
        actor=actor,
        page=page,
        per_page=per_page,
        company=request.args.get("company") or None,
        status=request.args.get("status") or InstallationStatus.INSTALLED,
        module=request.args.get("module") or None,
        health=request.args.get("health") or None,
    )
    upgrades = upgrades_available(result.items)
    return jsonify(page_json(result, lambda i: installation_json(i, upgrades.get(i.id))))


@bp.get("/installations/<int:installation_id>")
@document(
    summary="One installation",
    tags=["Installations"],
    responses={200: schemas.INSTALLATION, 404: "Absent or another company's."},
)
def get_installation(installation_id: int):
    inst = installs.get_installation(installation_id, actor=current_actor())
    return jsonify(installation_json(inst, upgrade_available(inst)))
