"""The registry service's own health and info: what /health and /info report (its
database, Redis, storage and service-registry standing). Not installation health, which is
services/health/."""

from __future__ import annotations

import logging
import os

import sqlalchemy as sa
from flask import current_app

from portal import __version__
from portal.extensions import db
from portal.models import ServiceState
from portal.redis_client import get_redis

log = logging.getLogger(__name__)
REGISTRY_STATE_KEY = "service_registry"


def _check_database() -> str:
    try:
        db.session.execute(sa.text("SELECT 1"))
        return "ok"
    except Exception as exc:  # any driver error means "unreachable" here
        log.warning("health: database check failed: %s", exc)
        db.session.rollback()
        return "unavailable"


def _check_redis() -> str:
    client = get_redis()
    if client is None:
        return "disabled"
    try:
        client.ping()
        return "ok"
    except Exception as exc:
        log.warning("health: redis check failed: %s", exc)
        return "unavailable"


def _check_storage() -> str:
    path = current_app.config["MODULE_STORAGE_PATH"]
    return "ok" if os.path.isdir(path) and os.access(path, os.W_OK) else "unavailable"


def _check_registry(database_ok: bool) -> str:
    """Read what the worker recorded: web processes never call the registry themselves."""
    if not current_app.config.get("SERVICE_REGISTRY_URL"):
        return "disabled"
    if not database_ok:
        return "unreachable"
    state = db.session.get(ServiceState, REGISTRY_STATE_KEY)
    if state is None:
        return "unreachable"
    return state.value.get("status", "unreachable")


def health_report() -> dict:
    """The service's /health body: healthy, degraded (Redis or storage away) or unhealthy
    (no database), with each check's own answer."""
    database = _check_database()
    checks = {
        "database": database,
        "redis": _check_redis(),
        "storage": _check_storage(),
        "service_registry": _check_registry(database == "ok"),
    }
    if database != "ok":
        overall = "unhealthy"
    elif "unavailable" in (checks["redis"], checks["storage"]):
        overall = "degraded"
    else:
        overall = "healthy"
    return {"status": overall, "checks": checks}


def service_info() -> dict:
    """The service's /info body: name, version, environment."""
    return {
        "name": "module-registry-service",
        "version": __version__,
        "environment": current_app.config["ENVIRONMENT"],
        "api": "/api/v1",
        "docs": "/docs",
    }
