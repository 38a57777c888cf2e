"""Explicit JSON shapes of api.md; models know nothing of JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from portal.models import Event, ModuleRelease
from portal.services.paging import Page


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def page_json(page: Page, item_json) -> dict:
    return {
        "items": [item_json(item) for item in page.items],
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
    }


def event_json(event: Event) -> dict:
    data = event.data if isinstance(event.data, dict) else json.loads(event.data or "{}")
    return {
        "id": event.id,
        "event_id": event.event_id,
        "type": event.type,
        "occurred_at": rfc3339(event.occurred_at),
        "actor": event.actor,
        "company": event.company,
        "module": event.module,
        "version": event.version,
        "module_id": event.module_id,
        "installation_id": event.installation_id,
        "data": data,
        "published": event.published_at is not None,
    }


def module_json(release: ModuleRelease) -> dict:
    package = None
    if release.package_sha256:
        package = {
            "filename": release.package_filename,
            "size": release.package_size,
            "sha256": release.package_sha256,
        }
    return {
        "id": release.id,
        "name": release.name,
        "version": release.version,
        "display_name": release.display_name,
        "description": release.description,
        "author": release.author,
        "category": release.category,
        "tags": list(release.tags or []),
        "status": release.status,
        "status_reason": release.status_reason,
        "visibility": release.visibility,
        "publisher": release.publisher.slug,
        "manifest": release.manifest,
        "dependencies": [
            {"name": d.name, "version": d.constraint, "type": d.type, "optional": d.optional}
            for d in release.dependencies
        ],
        "package": package,
        "created_at": rfc3339(release.created_at),
        "updated_at": rfc3339(release.updated_at),
    }


def installation_json(inst, upgrade_available: str | None = None) -> dict:
    """An installation; `upgrade_available` is services.installations.upgrades' answer."""
    from portal.services.installations.installs import masked_config

    return {
        "id": inst.id,
        "company": inst.company.slug,
        "module_id": inst.module_id,
        "module": inst.module_name,
        "version": inst.release.version,
        "status": inst.status,
        "config": masked_config(inst, inst.config),
        "endpoint_url": inst.endpoint_url,
        "revision": inst.revision,
        "upgrade_available": upgrade_available,
        "health": {
            "status": inst.health_status,
            "checked_at": rfc3339(inst.health_checked_at),
            "latency_ms": inst.health_latency_ms,
            "message": inst.health_message,
        },
        "created_at": rfc3339(inst.created_at),
        "updated_at": rfc3339(inst.updated_at),
    }


def revision_json(entry) -> dict:
    """A services.installations.revisions.RevisionChanges (masked already)."""
    return {
        "revision": entry.revision,
        "version": entry.version,
        "config": entry.config,
        "endpoint_url": entry.endpoint_url,
        "created_at": rfc3339(entry.created_at),
        "actor": entry.actor,
        "reason": entry.reason,
        "changes": [
            {
                "field": c.field,
                **({"pointer": c.pointer} if c.config else {}),
                "kind": c.kind,
                "before": c.before,
                "after": c.after,
                "secret": c.secret,
            }
            for c in entry.changes
        ],
    }


def plan_json(plan) -> dict:
    return {
        "plan": [
            {
                "module": s.module,
                "version": s.version,
                "module_id": s.module_id,
                "action": s.action,
                **({"installed_version": s.installed_version} if s.installed_version else {}),
            }
            for s in plan.steps
        ]
    }
