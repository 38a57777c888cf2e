"""The platform's service registry: register on start, renew, deregister on a clean stop.

Only the worker talks to the registry; it records the outcome in the database
(ServiceState) so that every web process reports it on /health without calling out.
A registry that is down never blocks start-up: the worker retries with backoff.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request

from flask import Flask

from portal import __version__
from portal.extensions import db
from portal.models import ServiceState
from portal.services.platform.service_health import REGISTRY_STATE_KEY
from portal.services.uow import unit_of_work
from portal.worker.loop import run_until_stopped

log = logging.getLogger(__name__)
SERVICE_NAME = "module-registry-service"


class RegistryClient:
    def __init__(self, config: dict, *, timeout: float = 5.0):
        self.base = config["SERVICE_REGISTRY_URL"].rstrip("/")
        self.register_path = config["SERVICE_REGISTRY_REGISTER_PATH"]
        self.deregister_path = config["SERVICE_REGISTRY_DEREGISTER_PATH"].format(name=SERVICE_NAME)
        public = config["SERVICE_PUBLIC_URL"].rstrip("/")
        self.body = {
            "name": SERVICE_NAME,
            "version": __version__,
            "url": public,
            "health_url": f"{public}/health",
        }
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310
            resp.read(65536)

    def register(self) -> None:
        """Raises OSError (URLError, HTTPError, timeouts) when the registry does not accept."""
        self._call("POST", self.register_path, self.body)

    def deregister(self) -> None:
        self._call("DELETE", self.deregister_path)


def record_registry_state(status: str, detail: str = "") -> None:
    """What /health reports as `service_registry`, for every web process to read."""
    with unit_of_work():
        state = db.session.get(ServiceState, REGISTRY_STATE_KEY)
        if state is None:
            db.session.add(
                ServiceState(key=REGISTRY_STATE_KEY, value={"status": status, "detail": detail})
            )
        else:
            state.value = {"status": status, "detail": detail}


def run_registration(
    app: Flask, stop: threading.Event, client: RegistryClient, *, renew_seconds: float = 30.0
) -> None:
    """Register, renew every `renew_seconds`, retry with backoff (up to 60 s) while the
    registry is unreachable, and deregister when `stop` is set."""
    registered = failing = False

    def renew() -> None:
        nonlocal registered, failing
        try:
            client.register()
        except (OSError, ValueError) as exc:
            if not failing:  # the first failure of a streak is news; the rest are not
                _safe_record("unreachable", str(exc))
            registered, failing = False, True
            raise
        failing = False
        if not registered:
            log.info("service registry: registered at %s", client.base)
            _safe_record("registered")
        registered = True

    with app.app_context():
        run_until_stopped(stop, renew, renew_seconds, 60.0, name="service registry")
        if registered:
            try:
                client.deregister()
                log.info("service registry: deregistered")
            except (OSError, ValueError) as exc:
                log.warning("service registry: deregistration failed: %s", exc)
            _safe_record("unreachable", "deregistered at shutdown")
        db.session.remove()


def _safe_record(status: str, detail: str = "") -> None:
    try:
        record_registry_state(status, detail)
    except Exception as exc:  # the database may be down too; the loop must go on
        log.warning("service registry: could not record state: %s", exc)
    finally:
        db.session.remove()
