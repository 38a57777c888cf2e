"""The health scheduler of `flask worker` (health: "a scheduler checks every installation"):
which installations are due, one scheduler at a time under a lease, passive health from
heartbeats, many checks at once (a sweep with hanging endpoints ends within about twice the
timeout)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Company, Event, HealthChange, Installation, Lease, ModuleRelease
from portal.models.base import utcnow
from portal.worker.health_scheduler import SCHEDULER_LEASE, HealthScheduler
from tests.helpers import approved_release, bearer


@pytest.fixture
def releases(app, people):
    """`fast`: interval 10 s, timeout 1 s; `hanging`: its health path hangs (timeout 1 s);
    `plain`: no health_check (interval 60 s, timeout 3 s, path /health)."""
    with app.app_context():
        ids = {
            "fast": approved_release(
                "fast",
                health_check={"path": "/health", "interval_seconds": 10, "timeout_seconds": 1},
            ).id,
            "hanging": approved_release(
                "hanging",
                health_check={"path": "/hang", "interval_seconds": 10, "timeout_seconds": 1},
            ).id,
            "plain": approved_release("plain").id,
        }
        db.session.remove()
    return ids


def add_installations(app, releases, specs: list[dict]) -> list[int]:
    """Installation rows straight into the database (one per spec): `release` (a key of
    `releases`), `name`, `endpoint_url`, `checked_ago`, `heartbeat_ago` (seconds),
    `health`, `status`."""
    now = utcnow()
    with app.app_context():
        acme = db.session.execute(sa.select(Company).where(Company.slug == "acme")).scalar_one()
        rows = []
        for spec in specs:
            release = db.session.get(ModuleRelease, releases[spec.get("release", "fast")])
            checked, beat = spec.get("checked_ago"), spec.get("heartbeat_ago")
            rows.append(
                Installation(
                    company_id=acme.id,
                    module_name=spec["name"],
                    module_id=release.id,
                    status=spec.get("status", "installed"),
                    config={},
                    endpoint_url=spec.get("endpoint_url"),
                    health_status=spec.get("health", "unknown"),
                    health_checked_at=None if checked is None else now - timedelta(seconds=checked),
                    last_heartbeat_at=None if beat is None else now - timedelta(seconds=beat),
                )
            )
        db.session.add_all(rows)
        db.session.commit()
        ids = [r.id for r in rows]
        db.session.remove()
    return ids


def health_of(app, inst_id: int) -> tuple[str, str | None]:
    with app.app_context():
        inst = db.session.get(Installation, inst_id)
        result = (inst.health_status, inst.health_message)
        db.session.remove()
    return result


def changes_of(app, inst_id: int) -> tuple[list, int]:
    """(history rows as (from, to, source), health_changed events) of an installation."""
    with app.app_context():
        rows = db.session.execute(
            sa.select(HealthChange.from_status, HealthChange.to_status, HealthChange.source)
            .where(HealthChange.installation_id == inst_id)
            .order_by(HealthChange.id)
        ).all()
        events = db.session.execute(
            sa.select(sa.func.count(Event.id)).where(
                Event.type == "installation.health_changed", Event.installation_id == inst_id
            )
        ).scalar()
        db.session.remove()
    return [tuple(r) for r in rows], events


# --- which installations are due -------------------------------------------------------


def test_due_installations_follow_their_interval(app, releases, runtime):
    url = runtime.url
    add_installations(
        app,
        releases,
        [
            {"name": "a", "endpoint_url": f"{url}/a"},  # never checked
            {"name": "b", "endpoint_url": f"{url}/b", "checked_ago": 5},  # interval 10
            {"name": "c", "endpoint_url": f"{url}/c", "checked_ago": 11},
            {"name": "d", "release": "plain", "endpoint_url": f"{url}/d", "checked_ago": 30},
            {"name": "e", "release": "plain", "endpoint_url": f"{url}/e", "checked_ago": 61},
            {"name": "f", "endpoint_url": f"{url}/f", "status": "uninstalled"},
            {"name": "g"},  # no endpoint, no heartbeats: nothing to do
        ],
    )
    scheduler = HealthScheduler(app, jitter=0)
    report = scheduler.sweep_once()
    assert report.acted and report.probed == 3
    assert sorted(runtime.paths()) == ["/a/health", "/c/health", "/e/health"]
    assert report.statuses == {"healthy": 3}

    # Just checked: nothing is due, for this scheduler or a fresh one.
    assert scheduler.sweep_once().probed == 0
    scheduler.release()
    assert HealthScheduler(app, jitter=0).sweep_once().probed == 0
    assert len(runtime.requests) == 3


def test_jitter_spreads_the_next_checks(app, releases, runtime):
    add_installations(
        app, releases, [{"name": f"m{i}", "endpoint_url": runtime.url} for i in range(20)]
    )
    scheduler = HealthScheduler(app, jitter=0.2)
    before = utcnow()
    assert scheduler.sweep_once().probed == 20
    after = utcnow()
    due = list(scheduler._next_due.values())
    assert len(set(due)) > 10  # spread out, not all at once
    for when in due:
        assert before + timedelta(seconds=8) <= when <= after + timedelta(seconds=10)


# --- one scheduler across worker processes ----------------------------------------------


def test_only_the_lease_holder_sweeps(app, releases, runtime):
    [inst] = add_installations(app, releases, [{"name": "a", "endpoint_url": runtime.url}])
    first, second = HealthScheduler(app, jitter=0), HealthScheduler(app, jitter=0)
    assert first.sweep_once().acted
    report = second.sweep_once()
    assert not report.acted and report.probed == 0
    assert len(runtime.requests) == 1
    first.release()  # a clean shutdown hands over at once
    with app.app_context():
        db.session.execute(sa.update(Installation).values(health_checked_at=None))
        db.session.commit()
        db.session.remove()
    assert second.sweep_once().probed == 1
    assert not first.sweep_once().acted
    assert health_of(app, inst)[0] == "healthy"


@pytest.mark.truncate
def test_two_schedulers_sweeping_at_once_only_one_acts(app, releases, runtime):
    add_installations(
        app, releases, [{"name": f"m{i}", "endpoint_url": runtime.url} for i in range(5)]
    )
    schedulers = [HealthScheduler(app, jitter=0) for _ in range(2)]
    barrier, reports = threading.Barrier(2), []

    def sweep(s):
        barrier.wait()
        reports.append(s.sweep_once())

    threads = [threading.Thread(target=sweep, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(r.acted for r in reports) == [False, True]
    assert len(runtime.requests) == 5


# --- passive health: heartbeats -------------------------------------------------------


def test_silence_for_three_intervals_makes_a_heartbeat_installation_unhealthy(
    app, client, releases, runtime
):
    quiet, recent, quiet_with_endpoint, patient = add_installations(
        app,
        releases,
        [
            # interval 10 s: silent after 30 s
            {"name": "quiet", "heartbeat_ago": 45, "checked_ago": 45, "health": "healthy"},
            {"name": "recent", "heartbeat_ago": 5, "checked_ago": 5, "health": "healthy"},
            {
                "name": "quiet-endpoint",
                "endpoint_url": runtime.url,
                "heartbeat_ago": 45,
                "checked_ago": 45,
                "health": "healthy",
            },
            # interval 60 s: silent only after 180 s
            {
                "name": "patient",
                "release": "plain",
                "heartbeat_ago": 100,
                "checked_ago": 100,
                "health": "degraded",
            },
        ],
    )
    report = HealthScheduler(app, jitter=0).sweep_once()
    assert report.silenced == 2 and report.changed == 2
    status, message = health_of(app, quiet)
    assert status == "unhealthy" and message.startswith("no heartbeat since 20")
    assert health_of(app, quiet_with_endpoint)[0] == "unhealthy"
    assert runtime.requests == []  # silent ones are not probed meanwhile
    assert health_of(app, recent) == ("healthy", None)
    assert health_of(app, patient) == ("degraded", None)
    assert changes_of(app, quiet) == ([("healthy", "unhealthy", "silence")], 1)

    # Still silent on the next tick: no new history, no new event.
    assert HealthScheduler(app, jitter=0).sweep_once().changed == 0
    assert changes_of(app, quiet) == ([("healthy", "unhealthy", "silence")], 1)

    # A heartbeat sets the status again, and the installation is no longer silent.
    resp = client.post(
        f"/api/v1/installations/{quiet}/heartbeat",
        json={"status": "healthy", "message": "back"},
        headers=bearer(app, "admin@acme.test"),
    )
    assert resp.status_code == 204
    assert HealthScheduler(app, jitter=0).sweep_once().silenced == 0
    assert health_of(app, quiet) == ("healthy", "back")
    assert changes_of(app, quiet)[0][-1] == ("unhealthy", "healthy", "heartbeat")


# --- many at once ----------------------------------------------------------------------


def test_a_sweep_with_hanging_endpoints_ends_within_twice_the_timeout(app, releases, runtime):
    specs = [
        {
            "name": f"m{i}",
            "release": "hanging" if i % 5 == 0 else "fast",
            "endpoint_url": runtime.url,
        }
        for i in range(50)
    ]
    ids = add_installations(app, releases, specs)
    scheduler = HealthScheduler(app, batch_size=16)  # results recorded in several batches
    started = time.monotonic()
    report = scheduler.sweep_once()
    elapsed = time.monotonic() - started
    assert report.probed == 50
    assert report.statuses == {"healthy": 40, "unhealthy": 10}
    assert elapsed < 2.0, f"sweep took {elapsed:.2f} s with a 1 s timeout"
    hanging = [i for i, spec in zip(ids, specs, strict=True) if spec["release"] == "hanging"]
    for inst_id in hanging:
        assert health_of(app, inst_id) == ("unhealthy", "no answer within 1 s")
        assert changes_of(app, inst_id) == ([("unknown", "unhealthy", "check")], 1)


# --- in the worker -------------------------------------------------------------------


def test_worker_once_runs_one_sweep(app, releases, runtime):
    [inst] = add_installations(app, releases, [{"name": "a", "endpoint_url": runtime.url}])
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert health_of(app, inst) == ("healthy", "200 OK")
    with app.app_context():  # --once gives the lease back for the running worker
        assert db.session.get(Lease, SCHEDULER_LEASE) is None
        db.session.remove()


@pytest.mark.truncate
def test_run_ticks_until_stopped_then_releases_the_lease(app, releases, runtime, monkeypatch):
    monkeypatch.setitem(app.config, "HEALTH_CHECK_DEFAULT_INTERVAL", 1)  # `plain` uses it
    [inst] = add_installations(
        app, releases, [{"name": "a", "release": "plain", "endpoint_url": runtime.url}]
    )
    scheduler = HealthScheduler(app, tick_seconds=0.05, jitter=0)
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while health_of(app, inst)[0] != "healthy" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert health_of(app, inst)[0] == "healthy"
        runtime.failing = True  # noticed at the next check, an interval later
        while health_of(app, inst)[0] != "unhealthy" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert health_of(app, inst) == ("unhealthy", "answered 503 Service Unavailable")
    assert changes_of(app, inst)[0] == [
        ("unknown", "healthy", "check"),
        ("healthy", "unhealthy", "check"),
    ]
    with app.app_context():
        assert db.session.get(Lease, SCHEDULER_LEASE) is None
        db.session.remove()
