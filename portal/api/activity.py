"""GET /api/v1/events: the event log, scoped to the caller."""

from __future__ import annotations

from flask import jsonify, request

from portal.api.base import bp, current_actor
from portal.api.openapi import PAGING_PARAMETERS, document, page_of, query_parameter
from portal.api.schemas import EVENT
from portal.api.serializers import event_json, page_json
from portal.services.activity.queries import list_events
from portal.services.paging import parse_paging


@bp.get("/events")
@bp.get("/events/")
@document(
    summary="List events, newest first",
    description="Platform admins see every event; others only those whose `company` is "
    "their own (module events carry the publisher company).",
    tags=["Events"],
    parameters=[
        query_parameter("type", "Only events of this type.", EVENT["properties"]["type"]),
        query_parameter("company", "Only events of this company (slug)."),
        query_parameter("module", "Only events of this module (name)."),
        query_parameter(
            "after_id",
            "Only events with a greater `id` (to poll for new ones).",
            {"type": "integer", "minimum": 0},
        ),
        *PAGING_PARAMETERS,
    ],
    responses={200: page_of(EVENT), 422: "An unknown type, or a bad `after_id` or paging."},
)
def list_():
    actor = current_actor()
    page, per_page = parse_paging(request.args)
    result = list_events(
        actor=actor,
        page=page,
        per_page=per_page,
        type_=request.args.get("type"),
        company=request.args.get("company"),
        module=request.args.get("module"),
        after_id=request.args.get("after_id"),
    )
    return jsonify(page_json(result, event_json))
