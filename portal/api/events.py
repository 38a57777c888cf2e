"""GET /api/v1/events: the event log, scoped to the caller."""

from __future__ import annotations

from flask import jsonify, request

from portal.api import bp, current_actor
from portal.api.serializers import event_json, page_json
from portal.services.activity import list_events
from portal.services.paging import parse_paging


@bp.get("/events")
@bp.get("/events/")
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
