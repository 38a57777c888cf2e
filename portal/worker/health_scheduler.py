"""The health scheduler of `flask worker`: active checks at each installation's interval,
and passive health from heartbeats.

Every tick, the lease holder (one scheduler across worker processes, `acquire_lease`):

1. reads the active installations that have an endpoint or send heartbeats;
2. marks unhealthy those that rely on heartbeats and sent none for three intervals
   ("no heartbeat since ...", source `silence`); they are not probed meanwhile, since the
   next heartbeat sets their status again;
3. probes the others that are due (never checked, or their interval passed, minus a
   jitter so that checks spread out) in a bounded thread pool: the probes only touch the
   network, so a tenth of the endpoints hanging costs one timeout, not a tenth of the
   installations times the timeout;
4. records the results through `record_health` in batches, each batch a unit of work.

`sweep_once()` is one tick (tests, `flask worker --once`, the benchmark); `run(stop)`
ticks until `stop` is set.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from portal.extensions import db
from portal.lib.outbound import Resolver, allowed_networks_from
from portal.models import HealthStatus, Installation, InstallationStatus, ModuleRelease
from portal.models.base import utcnow
from portal.services.health.probes import ProbeResult, probe, settings_for
from portal.services.health.records import record_health
from portal.services.platform.leases import acquire_lease, release_lease
from portal.services.uow import unit_of_work
from portal.worker.loop import holder_id, run_until_stopped

log = logging.getLogger(__name__)

SCHEDULER_LEASE = "health-scheduler"
SILENT_INTERVALS = 3


@dataclass
class SweepReport:
    acted: bool = False  # False: another scheduler holds the lease
    probed: int = 0
    silenced: int = 0
    changed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class _Row:
    id: int
    endpoint_url: str | None
    health_status: str
    health_checked_at: datetime | None
    last_heartbeat_at: datetime | None
    manifest: dict | None


def _spread(installation_id: int) -> float:
    """A stable number in [0, 1) per installation, so first intervals differ."""
    return (zlib.crc32(str(installation_id).encode()) % 10_000) / 10_000


class HealthScheduler:
    def __init__(
        self,
        app,
        *,
        holder: str | None = None,
        tick_seconds: float = 5.0,
        lease_seconds: float | None = None,
        concurrency: int | None = None,
        batch_size: int = 200,
        jitter: float = 0.1,
        resolver: Resolver | None = None,
    ):
        self.app = app
        config = app.config
        self.holder = holder or holder_id()
        self.tick_seconds = tick_seconds
        self.default_interval = float(config["HEALTH_CHECK_DEFAULT_INTERVAL"])
        self.default_timeout = float(config["HEALTH_CHECK_DEFAULT_TIMEOUT"])
        # Renewed at each tick and at each batch of results, so it outlives a sweep (about
        # twice the longest timeout, 30 s); a crashed holder is replaced within a minute.
        self.lease_seconds = lease_seconds or 60.0
        self.concurrency = max(1, concurrency or int(config["HEALTH_CHECK_CONCURRENCY"]))
        self.batch_size = batch_size
        self.jitter = min(max(jitter, 0.0), 0.5)
        self.resolver = resolver
        self.allowed_networks = allowed_networks_from(config)
        # When each installation is next due, as this scheduler decided after probing it;
        # unknown (another holder probed it, or a restart): from health_checked_at.
        self._next_due: dict[int, datetime] = {}

    # --- selection -------------------------------------------------------------------

    def _rows(self) -> list[_Row]:
        query = (
            sa.select(
                Installation.id,
                Installation.endpoint_url,
                Installation.health_status,
                Installation.health_checked_at,
                Installation.last_heartbeat_at,
                ModuleRelease.manifest,
            )
            .join(ModuleRelease, ModuleRelease.id == Installation.module_id)
            .where(
                Installation.status == InstallationStatus.INSTALLED,
                sa.or_(
                    sa.and_(
                        Installation.endpoint_url.is_not(None), Installation.endpoint_url != ""
                    ),
                    Installation.last_heartbeat_at.is_not(None),
                ),
            )
            .order_by(Installation.id)
        )
        return [_Row(*r) for r in db.session.execute(query)]

    def _interval(self, row: _Row) -> float:
        return settings_for(row.manifest, self.app.config).interval

    def silent_since(self, row: _Row, now: datetime) -> datetime | None:
        """When the silence began, for an installation that relies on heartbeats and
        sent none for three intervals; else None."""
        if row.last_heartbeat_at is None:
            return None
        began = row.last_heartbeat_at + timedelta(seconds=SILENT_INTERVALS * self._interval(row))
        return began if now >= began else None

    def is_due(self, row: _Row, now: datetime) -> bool:
        """Never checked, or the interval (less up to `jitter` of it) passed."""
        if not row.endpoint_url:
            return False
        known = self._next_due.get(row.id)
        if known is not None:
            return now >= known
        if row.health_checked_at is None:
            return True
        interval = self._interval(row) * (1 - self.jitter * _spread(row.id))
        return now >= row.health_checked_at + timedelta(seconds=interval)

    # --- one tick --------------------------------------------------------------------

    def sweep_once(self) -> SweepReport:
        """One tick under the lease; returns what it did (acted=False without the lease)."""
        started = time.monotonic()
        report = SweepReport()
        with self.app.app_context():
            try:
                if not acquire_lease(SCHEDULER_LEASE, self.holder, self.lease_seconds):
                    return report
                report.acted = True
                now = utcnow()
                rows = self._rows()
                db.session.rollback()  # no transaction stays open during the probes
                silent, due = [], []
                for row in rows:
                    began = self.silent_since(row, now)
                    if began is not None:
                        already = (
                            row.health_status == HealthStatus.UNHEALTHY
                            and row.health_checked_at is not None
                            and row.health_checked_at >= began
                        )
                        if not already:
                            silent.append(row)
                    elif self.is_due(row, now):
                        due.append(row)
                if silent:
                    report.silenced = len(silent)
                    report.changed += self._record_silence(silent)
                if due:
                    self._probe_all(due, report)
            finally:
                db.session.remove()
        report.seconds = time.monotonic() - started
        return report

    def _record_silence(self, rows: list[_Row]) -> int:
        changed = 0
        for start in range(0, len(rows), self.batch_size):
            batch = {r.id: r for r in rows[start : start + self.batch_size]}
            with unit_of_work():
                for inst in self._load(batch):
                    row = batch[inst.id]
                    if inst.last_heartbeat_at != row.last_heartbeat_at:
                        continue  # a heartbeat arrived meanwhile
                    since = inst.last_heartbeat_at.isoformat(timespec="seconds")
                    since = since.replace("+00:00", "Z")
                    message = f"no heartbeat since {since}"
                    changed += record_health(inst, HealthStatus.UNHEALTHY, message, None, "silence")
        return changed

    def _load(self, batch: dict[int, _Row]) -> list[Installation]:
        return list(
            db.session.execute(
                sa.select(Installation)
                .where(
                    Installation.id.in_(list(batch)),
                    Installation.status == InstallationStatus.INSTALLED,
                )
                .execution_options(populate_existing=True)
            ).scalars()
        )

    def _probe_one(self, row: _Row) -> ProbeResult:
        settings = settings_for(row.manifest, self.app.config)
        try:
            return probe(
                row.endpoint_url,
                path=settings.path,
                timeout=settings.timeout,
                allowed_networks=self.allowed_networks,
                resolver=self.resolver,
            )
        except Exception as exc:  # a bug must not stop the other checks
            log.exception("health check of installation %s failed", row.id)
            return ProbeResult(HealthStatus.UNHEALTHY, None, f"check failed: {type(exc).__name__}")

    def _probe_all(self, rows: list[_Row], report: SweepReport) -> None:
        pending: list[tuple[_Row, ProbeResult]] = []
        workers = min(self.concurrency, len(rows))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="health-probe") as pool:
            futures = {pool.submit(self._probe_one, row): row for row in rows}
            for future in as_completed(futures):
                pending.append((futures[future], future.result()))
                if len(pending) >= self.batch_size:
                    self._record_results(pending, report)
                    pending = []
        if pending:
            self._record_results(pending, report)

    def _record_results(self, results: list[tuple[_Row, ProbeResult]], report: SweepReport) -> None:
        acquire_lease(SCHEDULER_LEASE, self.holder, self.lease_seconds)  # keep it mid-sweep
        by_id = {row.id: (row, result) for row, result in results}
        with unit_of_work():
            for inst in self._load({row.id: row for row, _ in results}):
                row, result = by_id[inst.id]
                if inst.endpoint_url != row.endpoint_url:
                    continue  # the endpoint changed during the check: the next tick checks it
                report.changed += record_health(
                    inst, result.status, result.message, result.latency_ms, "check"
                )
        now = utcnow()
        for row, result in results:
            report.probed += 1
            status = str(result.status)  # plain text in the logged report
            report.statuses[status] = report.statuses.get(status, 0) + 1
            interval = self._interval(row) * (1 - self.jitter * random.random())
            self._next_due[row.id] = now + timedelta(seconds=interval)

    # --- the loop --------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` is set; errors (database down...) are logged and retried."""

        def tick() -> None:
            report = self.sweep_once()
            if report.probed or report.silenced:
                log.info(
                    "health sweep: %d checked %s, %d silent, %d changed in %.1fs",
                    report.probed,
                    report.statuses,
                    report.silenced,
                    report.changed,
                    report.seconds,
                )

        run_until_stopped(stop, tick, self.tick_seconds, 60.0, name="health scheduler")
        self.release()

    def release(self) -> None:
        """Give the lease up (a clean shutdown), so a standby scheduler takes over at once."""
        with self.app.app_context():
            try:
                release_lease(SCHEDULER_LEASE, self.holder)
            except Exception as exc:
                log.warning("health scheduler: could not release the lease: %s", exc)
            finally:
                db.session.remove()
