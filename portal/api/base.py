"""The API blueprint and what every endpoint shares: the bearer-token actor, 201 answers,
JSON bodies."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from portal.models import User
from portal.services.accounts import users
from portal.services.errors import Unauthorized

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def current_actor() -> User:
    """The user the bearer token names. Raises Unauthorized."""
    if "api_actor" not in g:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Send 'Authorization: Bearer <token>'.")
        g.api_actor = users.user_for_bearer(token)
    return g.api_actor


def created(body: dict, location: str):
    """201 with the new resource and its Location."""
    resp = jsonify(body)
    resp.status_code = 201
    resp.headers["Location"] = location
    return resp


def json_body() -> dict:
    """The request body as a JSON object. Raises BadRequest, or ValidationFailed for JSON
    nested deeper than Python's parser recurses."""
    from portal.http.uploads import json_object

    return json_object(request, force=True)
