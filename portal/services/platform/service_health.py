"""What /health, /health/live, /health/ready and /info report: the service's own health
(not a module's, which is services/health; not the worker's checks of modules).

Every probe runs in parallel under one deadline (`HEALTH_PROBE_TIMEOUT`, under a second
by default), so /health answers in time whatever hangs: a probe still running then is
reported as `timeout`. The worker writes a heartbeat row; the web processes only read it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime

import redis
import sqlalchemy as sa
from flask import Flask, current_app

from portal import __version__
from portal.database import engine_options
from portal.extensions import db
from portal.models import Event, ServiceState
from portal.models.base import utcnow
from portal.services.uow import unit_of_work

log = logging.getLogger(__name__)
REGISTRY_STATE_KEY = "service_registry"
WORKER_STATE_KEY = "worker"
HEARTBEAT_SECONDS = 10

# Probes of hung servers finish (or time out) in the background, never in the request.
_probes = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health-probe")


def _in_context(app: Flask, probe):
    def run():
        with app.app_context():
            try:
                return probe()
            finally:
                db.session.remove()

    return run


def _probe_engine(app: Flask) -> sa.Engine:
    """An engine of its own for the probe (one connection, two more at most): a request
    pool that is exhausted or stuck must not make /health wait, and the probe must not
    take a connection the requests need."""
    engine = app.extensions.get("health-probe-engine")
    if engine is None:
        options = engine_options(app.config["SQLALCHEMY_DATABASE_URI"])
        if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
            options.update(pool_size=1, max_overflow=2, pool_timeout=1)
        engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"], **options)
        app.extensions["health-probe-engine"] = engine
    return engine


def _database() -> dict:
    """SELECT 1, the relay's lag and the worker's heartbeat, in one short read."""
    timeout_ms = int(current_app.config["HEALTH_PROBE_TIMEOUT"] * 1000)
    with _probe_engine(current_app).connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"SET statement_timeout = {timeout_ms}"))
        conn.execute(sa.text("SELECT 1"))
        oldest = conn.execute(
            sa.select(sa.func.min(Event.occurred_at)).where(Event.published_at.is_(None))
        ).scalar()
        states = dict(
            conn.execute(
                sa.select(ServiceState.key, ServiceState.value).where(
                    ServiceState.key.in_((WORKER_STATE_KEY, REGISTRY_STATE_KEY))
                )
            ).all()
        )
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("RESET statement_timeout"))
    return {"oldest_unpublished": oldest, "states": states}


def _redis() -> str:
    url = current_app.config.get("REDIS_URL")
    if not url:
        return "disabled"
    timeout = current_app.config["HEALTH_PROBE_TIMEOUT"]
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


def _storage() -> str:
    path = current_app.config["MODULE_STORAGE_PATH"]
    return "ok" if os.path.isdir(path) and os.access(path, os.W_OK) else "unavailable"


def _run_probes() -> dict[str, object]:
    """name -> result, or the exception it raised, or TimeoutError when it did not finish."""
    app = current_app._get_current_object()
    futures = {
        name: _probes.submit(_in_context(app, probe))
        for name, probe in (("database", _database), ("redis", _redis), ("storage", _storage))
    }
    wait(futures.values(), timeout=app.config["HEALTH_PROBE_TIMEOUT"])
    results: dict[str, object] = {}
    for name, future in futures.items():
        if not future.done():
            results[name] = TimeoutError()
        elif future.exception() is not None:
            log.warning("health: %s probe failed: %s", name, future.exception())
            results[name] = future.exception()
        else:
            results[name] = future.result()
    return results


def _age_seconds(moment) -> float | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (utcnow() - moment).total_seconds())


def _relay(database: dict) -> dict:
    if not current_app.config.get("REDIS_URL"):
        return {"status": "disabled"}
    lag = _age_seconds(database["oldest_unpublished"])
    if lag is None:
        return {"status": "ok", "lag_seconds": 0}
    late = lag > current_app.config["RELAY_LAG_DEGRADED_SECONDS"]
    return {"status": "lagging" if late else "ok", "lag_seconds": round(lag, 1)}


def _worker(database: dict) -> dict:
    state = database["states"].get(WORKER_STATE_KEY)
    if not state:
        return {"status": "missing"}
    age = _age_seconds(state.get("at"))
    stale = age is None or age > 3 * HEARTBEAT_SECONDS
    return {"status": "stale" if stale else "ok", "last_heartbeat_seconds": round(age or 0, 1)}


def _registry(database: dict | None) -> str:
    """Read what the worker recorded: web processes never call the registry themselves."""
    if not current_app.config.get("SERVICE_REGISTRY_URL"):
        return "disabled"
    state = (database or {}).get("states", {}).get(REGISTRY_STATE_KEY)
    return state.get("status", "unreachable") if state else "unreachable"


def _word(result: object, ok: str = "ok") -> str:
    if isinstance(result, TimeoutError):
        return "timeout"
    if isinstance(result, BaseException):
        return "unavailable"
    return str(result) if isinstance(result, str) else ok


def health_report() -> dict:
    """The service's health: `unhealthy` when the database does not answer (nothing can be
    served), `degraded` when Redis, storage, the relay or the worker is not right (requests
    are served, but events or checks wait), else `healthy`."""
    started = time.monotonic()
    results = _run_probes()
    database = results["database"] if isinstance(results["database"], dict) else None
    checks: dict[str, object] = {
        "database": _word(results["database"]),
        "redis": _word(results["redis"]),
        "storage": _word(results["storage"]),
        "service_registry": _registry(database),
    }
    if database is not None:
        checks["relay"] = _relay(database)
        checks["worker"] = _worker(database)
    if database is None:
        overall = "unhealthy"
    elif (
        checks["redis"] in ("unavailable", "timeout")
        or checks["storage"] != "ok"
        or checks["relay"]["status"] == "lagging"
        or checks["worker"]["status"] != "ok"
    ):
        overall = "degraded"
    else:
        overall = "healthy"
    took = round((time.monotonic() - started) * 1000)
    return {"status": overall, "checks": checks, "took_ms": took}


def readiness() -> dict:
    """Whether this process can serve requests: its database answers and storage is there."""
    results = _run_probes()
    ready = isinstance(results["database"], dict) and results["storage"] == "ok"
    return {
        "status": "ready" if ready else "not ready",
        "checks": {"database": _word(results["database"]), "storage": _word(results["storage"])},
    }


def record_worker_heartbeat() -> None:
    """The worker's sign of life, read by every web process's /health."""
    value = {"at": utcnow().isoformat(), "host": socket.gethostname(), "pid": os.getpid()}
    with unit_of_work():
        state = db.session.get(ServiceState, WORKER_STATE_KEY)
        if state is None:
            db.session.add(ServiceState(key=WORKER_STATE_KEY, value=value))
        else:
            state.value = value


def service_info() -> dict:
    """The service's /info body: name, version, environment."""
    return {
        "name": "module-registry-service",
        "version": __version__,
        "environment": current_app.config["ENVIRONMENT"],
        "api": "/api/v1",
        "docs": "/docs",
    }
