"""What every worker job shares: who it is when it holds a lease, and how it keeps going."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

log = logging.getLogger(__name__)


def holder_id() -> str:
    """A lease holder's name: host and process for whoever reads the leases table, plus a
    random tag so that two jobs (or two restarts) in one process never pass for each other."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_until_stopped(
    stop: threading.Event,
    job: Callable[[], object],
    idle: float,
    max_backoff: float,
    *,
    name: str,
    first_backoff: float = 1.0,
) -> None:
    """Call `job()` until `stop` is set, waiting `idle` seconds after each success. A job
    that raises (Redis, the database or the registry away) is logged and retried after a
    wait that doubles from `first_backoff` up to `max_backoff`; the thread never dies."""
    backoff = first_backoff
    while not stop.is_set():
        try:
            job()
        except Exception as exc:
            log.warning("%s: %s; retrying in %.1fs", name, exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, max_backoff)
            continue
        backoff = first_backoff
        stop.wait(idle)
