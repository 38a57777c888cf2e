"""The API blueprint and what every endpoint shares: the bearer-token actor, 201 answers,
JSON bodies validated against the schema the OpenAPI document publishes."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from jsonschema import Draft202012Validator

from portal.lib.json_errors import describe_errors, unique_errors
from portal.models import User
from portal.services.accounts import users
from portal.services.errors import Unauthorized, ValidationFailed

bp = Blueprint("api", __name__, url_prefix="/api/v1")


_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


def query_flag(name: str) -> bool:
    """A true/false query parameter (absent: false). Raises ValidationFailed for anything
    else, so `?cascade=banana` is never read as a quiet "no"."""
    values = request.args.getlist(name)
    if not values:
        return False
    value = values[0].strip().lower()
    if len(values) > 1 or value not in _TRUE + _FALSE:
        raise ValidationFailed(
            "Invalid query.", errors=[{"pointer": f"/{name}", "message": "must be true or false"}]
        )
    return value in _TRUE


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


def body_validator(schema: dict) -> Draft202012Validator:
    """A validator for a published request schema (checked once, when the view is declared).
    Formats are not asserted: the services check URLs and the like with better messages."""
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def parse_body(validator: Draft202012Validator, *, optional: bool = False) -> dict:
    """The JSON body, valid against `validator`'s schema: every mistake at once, each as a
    JSON Pointer into the body (unknown keys included). An empty body is `{}` when
    `optional`. Raises BadRequest (not a JSON object) or ValidationFailed (422)."""
    if optional and not request.get_data():
        data: dict = {}
    else:
        data = json_body()
    # echo=False: no message repeats a submitted value (passwords, configuration secrets).
    errors = unique_errors(describe_errors(validator.iter_errors(data), echo=False))
    if errors:
        raise ValidationFailed("The request body is invalid.", errors=errors)
    return data


def validated_body() -> dict:
    """The JSON body, valid against the schema `@document(request=...)` publishes for this
    operation (read and checked once). Raises BadRequest or ValidationFailed (see
    parse_body); a RuntimeError when the view documents no JSON body, or this request is
    not JSON on an operation that also takes multipart."""
    if "api_body" not in g:
        rules = g.get("api_body_rules")
        if rules is None:
            raise RuntimeError("this operation documents no JSON request body")
        validator, optional = rules
        g.api_body = parse_body(validator, optional=optional)
    return g.api_body
