"""JSON Schemas of the API's request and response bodies (api.md), as plain dicts.

The same constants feed `@document` (and so the OpenAPI document); a schema made with
`component(...)` is written once under components.schemas. Keep them in api.md's order.
"""

from __future__ import annotations

from portal.api.openapi import component
from portal.events import EVENT_TYPES

NULLABLE_INT = {"type": ["integer", "null"]}
TIMESTAMP = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC."}

# Auth

AUTH_TOKEN_REQUEST = component(
    "AuthTokenRequest",
    {
        "type": "object",
        "required": ["email", "password"],
        "properties": {
            "email": {"type": "string", "minLength": 1, "examples": ["dev@acme.test"]},
            "password": {"type": "string", "minLength": 1, "format": "password"},
        },
    },
)

AUTH_TOKEN_RESPONSE = component(
    "AuthToken",
    {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in"],
        "properties": {
            "access_token": {"type": "string", "description": "A JWT."},
            "token_type": {"const": "Bearer"},
            "expires_in": {"type": "integer", "description": "Seconds.", "examples": [3600]},
        },
    },
)

# Events (events.md: the stream fields, with `data` as an object)

EVENT = component(
    "Event",
    {
        "type": "object",
        "required": ["id", "event_id", "type", "occurred_at", "actor", "company", "data"],
        "properties": {
            "id": {"type": "integer", "description": "Position in the log; see `after_id`."},
            "event_id": {"type": "string", "format": "uuid"},
            "type": {"enum": list(EVENT_TYPES)},
            "occurred_at": TIMESTAMP,
            "actor": {"type": "string", "description": "The user's email, or `system`."},
            "company": {"type": "string", "description": "Company slug, or empty."},
            "module": {"type": "string", "description": "Module name, or empty."},
            "version": {"type": "string", "description": "Release version, or empty."},
            "module_id": NULLABLE_INT,
            "installation_id": NULLABLE_INT,
            "data": {"type": "object", "description": "Details of the change (no secrets)."},
            "published": {"type": "boolean", "description": "Delivered to the stream yet."},
        },
    },
)
