"""The orphan sweep: stored packages that no release names, and temp uploads left by a
crash, removed once they are older than any upload still in flight could be.

A publish removes its own file when its transaction fails, but a process killed between
storing the file and committing its row leaves the file behind; so does a temp upload
of a killed process. The worker runs this sweep periodically; `flask storage sweep` on
demand."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from portal.extensions import db
from portal.models import ModuleRelease
from portal.services.publishing.releases import package_store

DEFAULT_MIN_AGE_SECONDS = 3600


@dataclass(frozen=True)
class SweepReport:
    packages_removed: int
    temp_files_removed: int


def sweep_orphan_packages(min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS) -> SweepReport:
    """Remove stored packages no release row names (deleted releases included: they keep
    their rows) and temp uploads, both only when older than `min_age_seconds`, so an upload
    whose row is about to commit is never touched."""
    store = package_store()
    cutoff = time.time() - min_age_seconds
    old = {digest for digest, mtime in store.stored() if mtime < cutoff}
    removed = 0
    named: set[str] = set()
    candidates = sorted(old)
    for start in range(0, len(candidates), 500):
        chunk = candidates[start : start + 500]
        query = sa.select(ModuleRelease.package_sha256).where(
            ModuleRelease.package_sha256.in_(chunk)
        )
        named.update(db.session.execute(query).scalars())
    db.session.rollback()  # end the read before touching files
    if old:
        for digest in sorted(old - named):
            store.delete(digest)
            removed += 1
    temps = 0
    for path, mtime in list(store.temp_files()):
        if mtime < cutoff:
            path.unlink(missing_ok=True)
            temps += 1
    return SweepReport(packages_removed=removed, temp_files_removed=temps)


def run_sweeps(stop, interval_seconds: float) -> None:
    """The worker's job: a sweep every `interval_seconds` until `stop` is set; a failed
    sweep (database away) is logged and tried again next time."""
    import logging

    log = logging.getLogger(__name__)
    while not stop.wait(interval_seconds):
        try:
            report = sweep_orphan_packages()
        except Exception:  # noqa: BLE001 - the next round tries again
            db.session.rollback()
            log.exception("orphan sweep failed")
            continue
        if report.packages_removed or report.temp_files_removed:
            log.info(
                "orphan sweep removed %d packages, %d temp files",
                report.packages_removed,
                report.temp_files_removed,
            )
