"""JSON Schemas of the API's request and response bodies (api.md), as plain dicts.

The same constants feed `@document` (and so the OpenAPI document); a schema made with
`component(...)` is written once under components.schemas. Keep them in api.md's order.
Request schemas are also what runs: `@document(request=...)` validates each JSON body
against them, so every request schema closes itself with `additionalProperties: false`
(an unknown key, such as a misspelt `visibilty`, is a 422, never silently ignored).
"""

from __future__ import annotations

from portal.api.openapi import component
from portal.events import EVENT_TYPES
from portal.models import (
    REPORTED_HEALTH,
    HealthStatus,
    InstallationStatus,
    ReleaseStatus,
    Visibility,
)
from portal.services.review.decisions import DECISIONS

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
        "additionalProperties": False,
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

# Modules (api.md: one release)

DEPENDENCY = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string", "description": "A version constraint (manifest.md)."},
        "type": {"enum": ["module", "service"]},
        "optional": {"type": "boolean"},
    },
}

MODULE = component(
    "Module",
    {
        "type": "object",
        "required": ["id", "name", "version", "status", "visibility", "publisher", "manifest"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "version": {"type": "string", "description": "SemVer 2.0.0."},
            "display_name": {"type": ["string", "null"]},
            "description": {"type": "string"},
            "author": {"type": "string"},
            "category": {"type": ["string", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "status": {"enum": list(ReleaseStatus.values())},
            "status_reason": {"type": ["string", "null"]},
            "visibility": {"enum": list(Visibility.values())},
            "publisher": {"type": "string", "description": "The publisher company's slug."},
            "manifest": {"type": "object", "description": "As submitted, parsed."},
            "dependencies": {"type": "array", "items": DEPENDENCY},
            "package": {
                "type": ["object", "null"],
                "properties": {
                    "filename": {"type": "string"},
                    "size": {"type": "integer"},
                    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                },
            },
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
        },
    },
)

_SUBMISSION_OPTIONS = {
    "visibility": {"enum": list(Visibility.values()), "default": Visibility.PUBLIC.value},
    "sha256": {
        "type": "string",
        "pattern": "^[0-9a-fA-F]{64}$",
        "description": "The digest the client expects; a mismatch refuses the upload.",
    },
    "publisher": {
        "type": "string",
        "description": "Company slug; required for platform admins, else the developer's own.",
    },
}

MODULE_UPLOAD = {
    "multipart/form-data": {
        "type": "object",
        "properties": {
            "package": {
                "type": "string",
                "contentMediaType": "application/octet-stream",
                "description": "A .zip or .tar.gz holding module.yaml (type decided by content).",
            },
            "manifest": {"type": "string", "description": "module.yaml as text or as a file."},
            **_SUBMISSION_OPTIONS,
        },
    },
    "application/json": component(
        "ModuleSubmission",
        {
            "type": "object",
            "properties": {
                "manifest": {
                    "description": "The manifest as a JSON object (anything else is reported "
                    "as a manifest error at its root, pointer '')."
                },
                "manifest_yaml": {"type": "string", "description": "The manifest as YAML text."},
                **_SUBMISSION_OPTIONS,
            },
            "additionalProperties": False,
        },
    ),
}

MODULE_UPDATE = {
    "application/json": component(
        "ModuleUpdate",
        {
            "type": "object",
            "description": "Metadata; for a pending or rejected release also a new manifest "
            "(with `sha256` and `publisher` as for a new release).",
            "properties": {
                **_SUBMISSION_OPTIONS,
                "visibility": {"enum": list(Visibility.values())},
                "description": {"type": "string", "maxLength": 500},
                "display_name": {"type": ["string", "null"], "description": "null: unchanged."},
                "category": {"type": ["string", "null"], "description": "null: unchanged."},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
                "manifest": {"description": "As for a new release."},
                "manifest_yaml": {"type": "string"},
            },
            "additionalProperties": False,
        },
    ),
    "multipart/form-data": MODULE_UPLOAD["multipart/form-data"],
}

VALIDATION_RESULT = component(
    "ManifestValidation",
    {
        "type": "object",
        "required": ["valid", "errors"],
        "properties": {
            "valid": {"type": "boolean"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"pointer": {"type": "string"}, "message": {"type": "string"}},
                },
            },
            "manifest": {"type": "object", "description": "Normalized, when valid."},
        },
    },
)

STATUS_CHANGE = component(
    "StatusChange",
    {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"enum": [status.value for status in DECISIONS]},
            "reason": {"type": "string", "description": "Required to reject."},
        },
        "additionalProperties": False,
    },
)

# Installations

INSTALLATION = component(
    "Installation",
    {
        "type": "object",
        "required": ["id", "company", "module_id", "module", "version", "status", "revision"],
        "properties": {
            "id": {"type": "integer"},
            "company": {"type": "string"},
            "module_id": {"type": "integer"},
            "module": {"type": "string"},
            "version": {"type": "string"},
            "status": {"enum": list(InstallationStatus.values())},
            "config": {"type": "object", "description": "Secrets show as ********."},
            "endpoint_url": {"type": ["string", "null"]},
            "revision": {"type": "integer"},
            "upgrade_available": {
                "type": ["string", "null"],
                "description": "The highest approved version above the installed one that the "
                "company can move to with nothing else changing (PUT it as `version`); null "
                "when there is none or the installation is uninstalled.",
            },
            "health": {
                "type": "object",
                "properties": {
                    "status": {"enum": list(HealthStatus.values())},
                    "checked_at": {"type": ["string", "null"], "format": "date-time"},
                    "latency_ms": NULLABLE_INT,
                    "message": {"type": ["string", "null"]},
                },
            },
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
        },
    },
)

INSTALL_REQUEST = component(
    "InstallRequest",
    {
        "type": "object",
        "properties": {
            "module_id": {"type": "integer"},
            "module": {"type": "string"},
            "version": {"type": "string", "default": "*", "description": "A constraint."},
            "config": {"type": "object"},
            "endpoint_url": {"type": "string", "format": "uri"},
            "install_dependencies": {"type": "boolean", "default": False},
            "company": {"type": "string", "description": "Required for platform admins."},
            "dependency_configs": {
                "type": "object",
                "description": "Configurations of dependencies the plan installs, by name.",
                "additionalProperties": {"type": "object"},
            },
        },
        "additionalProperties": False,
    },
)

PLAN = component(
    "InstallPlan",
    {
        "type": "object",
        "properties": {
            "plan": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "module": {"type": "string"},
                        "version": {"type": "string"},
                        "module_id": {"type": "integer"},
                        "action": {"enum": ["install", "upgrade", "keep"]},
                        "installed_version": {"type": "string"},
                    },
                },
            }
        },
    },
)

INSTALL_RESULT = {
    "allOf": [
        INSTALLATION,
        {
            "type": "object",
            "properties": {
                "installed_dependencies": {"type": "array", "items": INSTALLATION},
            },
        },
    ]
}

INSTALLATION_UPDATE = component(
    "InstallationUpdate",
    {
        "type": "object",
        "properties": {
            "config": {"type": "object", "description": "Send ******** to keep a secret."},
            "version": {"type": "string", "description": "An exact version: up or down."},
            "endpoint_url": {"type": ["string", "null"], "format": "uri"},
            "revision": {"type": "integer", "description": "The revision this edit is based on."},
        },
        "additionalProperties": False,
    },
)

REVISION = component(
    "Revision",
    {
        "type": "object",
        "properties": {
            "revision": {"type": "integer"},
            "version": {"type": "string"},
            "config": {"type": "object", "description": "Secrets masked."},
            "endpoint_url": {"type": ["string", "null"]},
            "created_at": TIMESTAMP,
            "actor": {"type": ["string", "null"]},
            "reason": {"type": "string"},
            "changes": {
                "type": "array",
                "description": "What changed against the revision before (the first: what it "
                "was installed with). A secret shows as changed, never with a value.",
                "items": {
                    "type": "object",
                    "required": ["field", "kind", "before", "after", "secret"],
                    "properties": {
                        "field": {"enum": ["version", "endpoint_url", "config"]},
                        "pointer": {
                            "type": "string",
                            "description": "Into the configuration, for a config change.",
                        },
                        "kind": {"enum": ["added", "removed", "changed"]},
                        "before": {
                            "type": ["string", "null"],
                            "description": "As text (JSON for a non-text value), cut at 200 "
                            "characters; null for a secret.",
                        },
                        "after": {"type": ["string", "null"]},
                        "secret": {"type": "boolean"},
                    },
                },
            },
        },
    },
)

ROLLBACK = {
    "type": "object",
    "description": "An empty body restores the previous revision.",
    "properties": {
        "revision": {"type": "integer", "description": "The revision to restore."},
        "expected_revision": {
            "type": "integer",
            "description": "The revision this rollback is based on (or If-Match).",
        },
    },
    "additionalProperties": False,
}

HEALTH_CHECK_RESULT = component(
    "HealthCheckResult",
    {
        "type": "object",
        "required": ["status", "latency_ms", "checked_at", "message"],
        "properties": {
            "status": {"enum": [status.value for status in REPORTED_HEALTH]},
            "latency_ms": NULLABLE_INT,
            "checked_at": {"type": "string", "format": "date-time"},
            "message": {"type": "string"},
        },
    },
)

HEARTBEAT = component(
    "Heartbeat",
    {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"enum": [status.value for status in REPORTED_HEALTH]},
            "message": {"type": "string"},
        },
        "additionalProperties": False,
    },
)
