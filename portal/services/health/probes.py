"""Installation health, probed: active checks GET an installation's endpoint + the
manifest's health path. (Recording the result is records.py; the registry's own /health
is services/platform/service_health.py.)

`probe` is pure network (no database, no app context), so the scheduler runs many at once
in a thread pool; `check_installation` is the API's "check now", recorded through
`portal.services.health.records.record_health` like every other change of health.
"""

from __future__ import annotations

import http.client
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from flask import current_app

from portal.extensions import db
from portal.lib.outbound import (
    HostNotResolved,
    OutboundRefused,
    Resolver,
    allowed_networks_from,
    check_url,
    connection_for,
    parse_networks,
)
from portal.models import HealthStatus, Installation, InstallationStatus, User
from portal.services.errors import Conflict
from portal.services.health.records import record_health
from portal.services.installations.installs import get_installation
from portal.services.uow import unit_of_work

MAX_BODY_BYTES = 64 * 1024
MAX_TIMEOUT_SECONDS = 30.0  # the manifest schema's maximum; also caps older manifests
MAX_MESSAGE = 500  # the health_message column
DEFAULT_PATH = "/health"
USER_AGENT = "module-registry-health-check/1"


@dataclass(frozen=True)
class ProbeResult:
    status: str  # healthy | degraded | unhealthy
    latency_ms: int | None
    message: str
    http_status: int | None = None
    body_bytes: int = 0  # how much of the body was read (never more than MAX_BODY_BYTES)


@dataclass(frozen=True)
class CheckSettings:
    path: str
    interval: float
    timeout: float


def check_settings(manifest: dict | None, *, default_interval: float, default_timeout: float):
    """The manifest's `health_check` path, interval and timeout, with the defaults."""
    spec = (manifest or {}).get("health_check")
    spec = spec if isinstance(spec, dict) else {}

    def number(key: str, default: float, low: float, high: float) -> float:
        value = spec.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            return default
        return float(min(max(value, low), high))

    path = spec.get("path")
    return CheckSettings(
        path=path if isinstance(path, str) and path else DEFAULT_PATH,
        interval=number("interval_seconds", float(default_interval), 1.0, 86_400.0),
        timeout=number("timeout_seconds", float(default_timeout), 0.1, MAX_TIMEOUT_SECONDS),
    )


def check_url_of(endpoint_url: str, path: str) -> str:
    """endpoint_url + path: `http://h:9000/app` and `/health` give `http://h:9000/app/health`."""
    parts = urlsplit(endpoint_url)
    joined = parts.path.rstrip("/") + "/" + path.lstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, joined, parts.query, ""))


def _clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def probe(
    url: str,
    *,
    path: str = DEFAULT_PATH,
    timeout: float = 3.0,
    allowed_networks,
    resolver: Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> ProbeResult:
    """GET `url` + `path` through the outbound guard, within `timeout` seconds overall
    (name resolution, connect, TLS, headers and body), no redirects followed, at most
    64 KiB of the body read. Never raises for what the server does."""
    started = time.monotonic()
    deadline = started + timeout

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    def unhealthy(message: str, http_status: int | None = None, body: int = 0) -> ProbeResult:
        return ProbeResult(HealthStatus.UNHEALTHY, elapsed_ms(), _clip(message), http_status, body)

    no_answer = f"no answer within {_seconds(timeout)}"
    target_url = check_url_of(url, path) if isinstance(url, str) else url
    try:
        targets = check_url(
            target_url,
            allowed_networks=parse_networks(allowed_networks),
            resolver=resolver,
            resolve_timeout=timeout,
        )
    except OutboundRefused as exc:
        return unhealthy(f"refused: {exc}")
    except HostNotResolved as exc:
        return unhealthy(str(exc))
    if time.monotonic() >= deadline:
        return unhealthy(no_answer)
    parts = urlsplit(target_url)
    request_path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    last_error: str = "no address to connect to"
    for target in targets:
        conn = connection_for(target, timeout=timeout, deadline=deadline, ssl_context=ssl_context)
        try:
            try:
                conn.connect()
            except TimeoutError:
                return unhealthy(no_answer)
            except ssl.SSLError as exc:
                return unhealthy(f"TLS failed with {target.host} ({target.address}): {exc}")
            except OSError as exc:
                reason = exc.strerror or str(exc) or type(exc).__name__
                last_error = f"connection to {target.address}:{target.port} failed: {reason}"
                continue  # the next checked address, if any
            try:
                conn.putrequest("GET", request_path, skip_accept_encoding=True)
                conn.putheader("User-Agent", USER_AGENT)
                conn.putheader("Accept", "*/*")
                conn.putheader("Connection", "close")
                conn.endheaders()
                response = conn.getresponse()
                body = response.read(MAX_BODY_BYTES)
            except TimeoutError:
                return unhealthy(no_answer)
            except (http.client.HTTPException, ValueError) as exc:
                return unhealthy(f"invalid HTTP answer: {type(exc).__name__}: {exc}")
            except OSError as exc:
                reason = exc.strerror or str(exc) or type(exc).__name__
                return unhealthy(f"connection to {target.address}:{target.port} failed: {reason}")
            return _judge(response, len(body), timeout, elapsed_ms())
        finally:
            conn.close()
    return unhealthy(last_error)


def _judge(response, body_bytes: int, timeout: float, latency_ms: int) -> ProbeResult:
    code, reason = response.status, (response.reason or "").strip()
    status_line = f"{code} {reason}".strip()
    if 300 <= code < 400:
        location = (response.getheader("Location") or "no Location").strip()
        message = f"redirect not followed: {code} to {location}"
        return ProbeResult(HealthStatus.UNHEALTHY, latency_ms, _clip(message), code, body_bytes)
    if not 200 <= code < 300:
        return ProbeResult(
            HealthStatus.UNHEALTHY, latency_ms, _clip(f"answered {status_line}"), code, body_bytes
        )
    if latency_ms > timeout * 1000 / 2:
        message = (
            f"{status_line}, slow: {latency_ms} ms (over half the {_seconds(timeout)} timeout)"
        )
        return ProbeResult(HealthStatus.DEGRADED, latency_ms, _clip(message), code, body_bytes)
    return ProbeResult(HealthStatus.HEALTHY, latency_ms, _clip(status_line), code, body_bytes)


def settings_for(manifest: dict | None, config) -> CheckSettings:
    """The manifest's health-check settings with the app's defaults."""
    return check_settings(
        manifest,
        default_interval=config["HEALTH_CHECK_DEFAULT_INTERVAL"],
        default_timeout=config["HEALTH_CHECK_DEFAULT_TIMEOUT"],
    )


@dataclass(frozen=True)
class CheckResult:
    status: str
    latency_ms: int | None
    checked_at: datetime
    message: str


def check_installation(
    installation_id: int, *, actor: User, resolver: Resolver | None = None
) -> CheckResult:
    """Check an installation's endpoint now and record the result (history and event on a
    change of status). Raises NotFound (another company's), Conflict (no endpoint_url, or
    uninstalled)."""
    inst = get_installation(installation_id, actor=actor)
    if inst.status != InstallationStatus.INSTALLED:
        raise Conflict(f"{inst.module_name} is uninstalled; there is nothing to check.")
    if not inst.endpoint_url:
        raise Conflict(
            f"{inst.module_name} has no endpoint_url to check; set one with "
            "PUT /api/v1/installations/{id} first."
        )
    endpoint = inst.endpoint_url
    settings = settings_for(inst.release.manifest, current_app.config)
    # No transaction stays open while the endpoint is being called (up to 30 s).
    db.session.rollback()
    result = probe(
        endpoint,
        path=settings.path,
        timeout=settings.timeout,
        allowed_networks=allowed_networks_from(current_app.config),
        resolver=resolver,
    )
    with unit_of_work():
        inst = db.session.get(Installation, installation_id, populate_existing=True)
        if (
            inst is None
            or inst.status != InstallationStatus.INSTALLED
            or inst.endpoint_url != endpoint
        ):
            raise Conflict("The installation changed during the check; try again.")
        record_health(inst, result.status, result.message, result.latency_ms, "check", actor=actor)
        checked_at = inst.health_checked_at
    return CheckResult(result.status, result.latency_ms, checked_at, result.message)
