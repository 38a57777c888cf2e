"""The OpenAPI 3.1 document of the JSON API, generated from the URL map and `@document`.

Every view under /api/ carries its contract next to its code:

    @bp.get("/events")
    @document(
        summary="List events",
        tags=["Events"],
        parameters=[*PAGING_PARAMETERS, query_parameter("type", "Only events of this type.")],
        responses={200: page_of(EVENT), 422: "A filter or paging value is invalid."},
    )
    def list_(): ...

`request={"application/json": SCHEMA}` is executable as well as documented: the view reads
its body with `portal.api.base.validated_body()`, which checks it against SCHEMA (unknown
keys refused, as every request schema says `additionalProperties: false`; every error at
once as JSON Pointers; 422). The view calls it after checking the token, so a bad body
without one stays a 401. An operation that also takes multipart validates JSON bodies
only; the multipart path streams as before.

Schemas are plain JSON Schema dicts (portal/api/schemas.py); a schema made with
`component(name, ...)` is written once under `components.schemas` and referenced by `$ref`.
A route without `@document` still appears, marked `x-undocumented`, and the tests fail on it.
"""

from __future__ import annotations

import functools
import re
from http import HTTPStatus

from flask import Flask, g
from flask import request as current_request

import portal
from portal.api.base import body_validator
from portal.services.paging import MAX_PAGE

SKIPPED_METHODS = {"HEAD", "OPTIONS"}
COMPONENT_KEY = "x-component"
PROBLEM_JSON = "application/problem+json"
_RULE_ARGUMENT = re.compile(
    r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?(?P<name>\w+)>"
)
_CONVERTER_SCHEMAS = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}


def component(name: str, schema: dict) -> dict:
    """Mark a schema to be written once under components.schemas as `name`."""
    return {COMPONENT_KEY: name, **schema}


def document(
    *,
    summary: str,
    description: str = "",
    tags: list[str],
    auth: bool = True,
    request: dict | None = None,
    body_optional: bool = False,
    responses: dict[int, dict | str | None],
    parameters: list[dict] | None = None,
):
    """Attach an API view's OpenAPI metadata; put it directly under the `@bp.get(...)` lines.

    `request` maps content types to JSON Schemas. `responses` maps status codes to a JSON
    Schema (an `application/json` body), to a string (a description only; 4xx and 5xx get
    the Problem schema as `application/problem+json`), or to a full OpenAPI response object
    (a dict with a `content` or `headers` key, for downloads and `Location` headers).
    With `auth` (the default) the operation needs the bearer token and documents a 401; with
    a `request` body it documents 400 and 413 (and 422 for JSON) unless the view says more
    (or `None`: a default the view never answers).
    A JSON request schema is enforced (see the module docstring); with `body_optional` an
    empty body stands for `{}`.
    """
    meta = {
        "summary": summary,
        "description": description,
        "tags": list(tags),
        "auth": auth,
        "request": request,
        "body_optional": body_optional,
        "responses": dict(responses),
        "parameters": list(parameters or []),
    }
    json_schema = (request or {}).get("application/json")
    validator = body_validator(json_schema) if json_schema is not None else None
    json_only = set(request or {}) == {"application/json"}

    def decorate(view):
        if validator is None:
            view._openapi = meta
            return view

        @functools.wraps(view)
        def validated(*args, **kwargs):
            # The body is read when the view asks (validated_body()), after it has checked who
            # asks: a bad body without a token stays a 401. A JSON-only operation reads any
            # body as JSON, as it always did; one that also takes multipart reads JSON only.
            if json_only or current_request.mimetype == "application/json":
                g.api_body_rules = (validator, body_optional)
            return view(*args, **kwargs)

        validated._openapi = meta
        return validated

    return decorate


PROBLEM = component(
    "Problem",
    {
        "type": "object",
        "description": "RFC 9457 problem details, sent as application/problem+json.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "description": "Validation failures; `pointer` is a JSON Pointer into what was "
                "submitted (the manifest, the configuration object, or the body).",
                "items": {
                    "type": "object",
                    "required": ["pointer", "message"],
                    "properties": {
                        "pointer": {"type": "string", "examples": ["/dependencies/0/version"]},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    },
)


UNAVAILABLE = "The database or Redis cannot be reached right now; see `Retry-After`."
RETRY_AFTER = {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}


def query_parameter(
    name: str, description: str, schema: dict | None = None, *, required: bool = False
) -> dict:
    """A query-string parameter (a string unless `schema` says otherwise)."""
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def id_parameter(name: str, description: str = "") -> dict:
    """An integer path parameter such as `module_id` in /api/v1/modules/{module_id}."""
    noun = name.removesuffix("_id").replace("_", " ")
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description or f"The {noun}'s id.",
        "schema": {"type": "integer", "minimum": 1},
    }


PAGING_PARAMETERS = [
    query_parameter(
        "page",
        "The page to answer, from 1 (past the last page: no items, the total still given).",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
    ),
    query_parameter(
        "per_page",
        "Items per page; over 100 is clamped to 100 (the answer's `per_page` says so).",
        {"type": "integer", "minimum": 1, "default": 20},
    ),
]


def page_of(item_schema: dict) -> dict:
    """The list envelope of api.md: `{"items", "page", "per_page", "total"}`."""
    schema = {
        "type": "object",
        "required": ["items", "page", "per_page", "total"],
        "properties": {
            "items": {"type": "array", "items": item_schema},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": 100},
            "total": {"type": "integer", "minimum": 0},
        },
    }
    name = item_schema.get(COMPONENT_KEY)
    return component(f"{name}Page", schema) if name else schema


SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT or personal API token",
        "description": "`Authorization: Bearer <token>`. The token is either a JWT, issued by "
        "`POST /api/v1/auth/token` or by the platform's auth service, or a personal API "
        "token created on the /tokens page or with `flask tokens create`. The API does not "
        "accept the browser's session cookie.",
    }
}

# Shown above each tag's operations; a tag without an entry is listed bare.
TAG_DESCRIPTIONS = {
    "Auth": "Tokens for `Authorization: Bearer`.",
    "Events": "The lifecycle event log (spec: events.md).",
    "Docs": "This document; browsable at /docs and /redoc.",
}

DESCRIPTION = """\
The JSON API of the Module Registry. Bodies are JSON except uploads (multipart/form-data)
and package downloads. Errors are RFC 9457 problem details (`application/problem+json`),
with `errors: [{pointer, message}]` for validation failures. Lists take `page` and
`per_page` and answer `{items, page, per_page, total}`. Times are RFC 3339 in UTC; ids are
integers."""


def build_openapi(app: Flask) -> dict:
    """The OpenAPI 3.1 document of every rule under /api/ in the app's URL map."""
    paths: dict[str, dict] = {}
    components: dict[str, dict] = {}
    operation_ids: set[str] = set()
    tags: set[str] = set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if not rule.rule.startswith("/api/"):
            continue
        path, path_parameters = openapi_path(rule.rule)
        view = app.view_functions[rule.endpoint]
        meta = getattr(view, "_openapi", None)
        for method in sorted(rule.methods - SKIPPED_METHODS):
            operation_id = _unique_operation_id(rule.endpoint, method, path, operation_ids)
            if meta is None:
                operation = _undocumented(rule.endpoint, path_parameters, operation_id)
            else:
                operation = _operation(meta, path_parameters, operation_id)
                tags.update(meta["tags"])
            paths.setdefault(path, {})[method.lower()] = _hoist(operation, components)
    _hoist(PROBLEM, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Module Registry API",
            "version": portal.__version__,
            "description": DESCRIPTION,
        },
        "tags": [_tag(name) for name in sorted(tags)],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def _tag(name: str) -> dict:
    description = TAG_DESCRIPTIONS.get(name)
    return {"name": name, "description": description} if description else {"name": name}


def openapi_path(rule: str) -> tuple[str, list[dict]]:
    """`/api/v1/modules/<int:module_id>` → (`/api/v1/modules/{module_id}`, path parameters)."""
    parameters = []

    def replace(match: re.Match) -> str:
        name = match["name"]
        schema = _CONVERTER_SCHEMAS.get(match["converter"] or "", {"type": "string"})
        parameters.append({"name": name, "in": "path", "required": True, "schema": dict(schema)})
        return "{" + name + "}"

    return _RULE_ARGUMENT.sub(replace, rule), parameters


def _unique_operation_id(endpoint: str, method: str, path: str, used: set[str]) -> str:
    # One view may answer two rules (`/events` and `/events/`); operationIds must be unique.
    base = f"{endpoint.replace('.', '_').rstrip('_')}_{method.lower()}"
    candidate = base + ("_slash" if path.endswith("/") and base in used else "")
    number = 2
    while candidate in used:
        candidate, number = f"{base}_{number}", number + 1
    used.add(candidate)
    return candidate


def _undocumented(endpoint: str, path_parameters: list[dict], operation_id: str) -> dict:
    operation = {
        "operationId": operation_id,
        "summary": f"{endpoint} (undocumented)",
        "x-undocumented": True,
        "responses": {"default": {"description": "Not documented: add @document to the view."}},
    }
    if path_parameters:
        operation["parameters"] = path_parameters
    return operation


def _operation(meta: dict, path_parameters: list[dict], operation_id: str) -> dict:
    operation = {"operationId": operation_id, "summary": meta["summary"], "tags": meta["tags"]}
    if meta["description"]:
        operation["description"] = meta["description"]
    parameters = _merge_parameters(path_parameters, meta["parameters"])
    if parameters:
        operation["parameters"] = parameters
    if meta["request"]:
        operation["requestBody"] = {
            "required": not meta["body_optional"],
            "content": {ctype: {"schema": schema} for ctype, schema in meta["request"].items()},
        }
    responses = dict(meta["responses"])
    if meta["auth"]:
        responses.setdefault(401, "No bearer token, or a bad or expired one.")
        # Reading the token's user needs the database (web/errors.py: outages are 503s).
        responses.setdefault(503, UNAVAILABLE)
    if any(p["in"] == "query" for p in parameters):
        responses.setdefault(400, "A NUL character in the query string.")
    if meta["request"]:
        # What the shared body handling answers, whatever the view adds (parse_body).
        responses.setdefault(400, "The body is not JSON, or not a JSON object.")
        responses.setdefault(413, "The body is larger than the server accepts.")
        if "application/json" in meta["request"]:
            responses.setdefault(
                422, "The body does not match its schema: every error, each with a JSON Pointer."
            )
    operation["responses"] = {
        str(status): _response(status, value)
        for status, value in sorted(responses.items())
        if value is not None  # a default the view never answers
    }
    operation["security"] = [{"bearer": []}] if meta["auth"] else []
    return operation


def _merge_parameters(path_parameters: list[dict], declared: list[dict]) -> list[dict]:
    """The rule's path parameters, each replaced by a declared one of the same name."""
    by_key = {(p["name"], p["in"]): p for p in declared}
    merged = [by_key.pop((p["name"], "path"), p) for p in path_parameters]
    return merged + [p for p in declared if (p["name"], p["in"]) in by_key]


def _response(status: int, value: dict | str) -> dict:
    error = status >= 400
    if isinstance(value, str):
        response = {"description": value}
        if status in (429, 503):
            response["headers"] = {"Retry-After": RETRY_AFTER}
        if error:
            response["content"] = {PROBLEM_JSON: {"schema": PROBLEM}}
        return response
    if "content" in value or "headers" in value:
        return {"description": _phrase(status), **value}
    ctype = PROBLEM_JSON if error else "application/json"
    return {"description": _phrase(status), "content": {ctype: {"schema": value}}}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return str(status)


def _hoist(node, components: dict[str, dict]):
    """A copy of `node` with every `component(...)` schema moved to `components` as a $ref."""
    if isinstance(node, list):
        return [_hoist(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: _hoist(value, components) for key, value in node.items()}
    name = copy.pop(COMPONENT_KEY, None)
    if name is None:
        return copy
    if components.setdefault(name, copy) != copy:
        raise ValueError(f"two different schemas are both named {name!r}")
    return {"$ref": f"#/components/schemas/{name}"}
