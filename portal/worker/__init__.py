"""`flask worker`: the event relay and the periodic jobs, each in its own thread."""

from __future__ import annotations

import logging
import signal
import threading
import time

from flask import current_app

from portal.extensions import db
from portal.redis_client import get_redis
from portal.services.platform.service_health import HEARTBEAT_SECONDS, record_worker_heartbeat
from portal.services.publishing.sweep import run_sweeps
from portal.worker.health_scheduler import HealthScheduler
from portal.worker.relay import Relay

log = logging.getLogger(__name__)


def build_relay(app) -> Relay | None:
    client = get_redis(app)
    if client is None:
        return None
    return Relay(
        client,
        stream=app.config["EVENT_STREAM"],
        maxlen=app.config["EVENT_STREAM_MAXLEN"],
    )


def run_worker(*, once: bool = False) -> None:
    """Run until SIGINT/SIGTERM; with `once`, a single pass of every job."""
    app = current_app._get_current_object()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    relay = build_relay(app)
    scheduler = HealthScheduler(app)
    if once:
        _heartbeat(app)
        report = scheduler.sweep_once()
        scheduler.release()
        log.info(
            "health sweep: %d checked %s, %d silent, %d changed",
            report.probed,
            report.statuses,
            report.silenced,
            report.changed,
        )
        if relay:
            log.info("relay published %d events", relay.drain())
        return
    stop = threading.Event()

    def _stop(_signum, _frame):
        log.info("stopping")
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    threads = []
    if relay is None:
        log.info("REDIS_URL is not set: events stay in the database")
    else:
        threads.append(
            threading.Thread(target=_in_app(app, relay.run, stop), name="relay", daemon=True)
        )
    threads.append(
        threading.Thread(target=scheduler.run, args=(stop,), name="health-scheduler", daemon=True)
    )
    sweep_every = app.config["ORPHAN_SWEEP_INTERVAL_SECONDS"]
    threads.append(
        threading.Thread(
            target=_in_app(app, run_sweeps, stop, sweep_every), name="orphan-sweep", daemon=True
        )
    )
    if app.config.get("SERVICE_REGISTRY_URL"):
        from portal.worker.service_registry import RegistryClient, run_registration

        client = RegistryClient(app.config)
        renew = app.config["SERVICE_REGISTRY_RENEW_SECONDS"]
        threads.append(
            threading.Thread(
                target=lambda: run_registration(app, stop, client, renew_seconds=renew),
                name="service-registry",
            )
        )
    for thread in threads:
        thread.start()
    log.info("worker running (%s)", ", ".join(t.name for t in threads) or "no jobs")
    while not stop.is_set():
        _heartbeat(app)
        stop.wait(HEARTBEAT_SECONDS)
    # Two seconds in all: a job mid-round stops at its next check of `stop`; what it left
    # undone (an unpublished event, a due probe) is the next worker's, nothing is lost.
    deadline = time.monotonic() + 2
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


def _heartbeat(app) -> None:
    """The worker's sign of life for /health; a database outage only delays it."""
    with app.app_context():
        try:
            record_worker_heartbeat()
        except Exception as exc:  # noqa: BLE001 - tried again next beat
            log.warning("heartbeat not recorded: %s", exc)
        finally:
            db.session.remove()


def _in_app(app, func, *args):
    def target():
        with app.app_context():
            func(*args)

    return target
