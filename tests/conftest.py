"""Test fixtures: a fresh database per run (PostgreSQL with TEST_DATABASE_URL, else a
temporary SQLite file), migrations applied once, rows truncated after each test, and a
unique Redis key prefix per run (TEST_REDIS_URL)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from portal import create_app
from portal.config import TestConfig
from portal.extensions import db
from tests import helpers

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
RUN_ID = uuid.uuid4().hex[:10]
STRICT = os.environ.get("MR_FAIL_ON_SKIP") == "1"
_skipped: list[str] = []


def pytest_report_header(config):
    backend = "PostgreSQL" if TEST_DATABASE_URL else "SQLite (set TEST_DATABASE_URL for PostgreSQL)"
    redis = "Redis" if TEST_REDIS_URL else "no Redis (set TEST_REDIS_URL)"
    return [f"module-registry tests: {backend}; {redis}; run id {RUN_ID}"]


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    # CI must run everything: a skipped Postgres, Redis or browser test fails the run there.
    if STRICT and _skipped:
        print(f"\nMR_FAIL_ON_SKIP: {len(_skipped)} test(s) were skipped:")
        for nodeid in _skipped:
            print("  ", nodeid)
        session.exitstatus = 1


@pytest.fixture(scope="session")
def database_url():
    if not TEST_DATABASE_URL:
        tmp = tempfile.mkdtemp(prefix="mr-test-db-")
        yield f"sqlite:///{tmp}/test.db"
        shutil.rmtree(tmp, ignore_errors=True)
        return
    url, drop = helpers.create_postgres_database(TEST_DATABASE_URL, f"mr_test_{RUN_ID}")
    yield url
    drop()


@pytest.fixture(scope="session")
def storage_dir():
    path = Path(tempfile.mkdtemp(prefix="mr-test-storage-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def app(database_url, storage_dir):
    app = create_app(
        TestConfig(
            database_url,
            MODULE_STORAGE_PATH=str(storage_dir / "packages"),
            INSTANCE_PATH=str(storage_dir / "instance"),
        )
    )
    (storage_dir / "packages").mkdir(exist_ok=True)
    helpers.migrate_to_head(app)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _clean_database(request):
    """Truncate every table after a test that used the app (tests cross threads and
    processes, so one rolled-back outer transaction cannot isolate them)."""
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    with app.app_context():
        db.session.remove()
        helpers.truncate_all(db.engine)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def htmx_client(app):
    return helpers.HtmxClient(app)


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def people(app):
    """Two companies (acme, globex) and a user of every role; password helpers.PASSWORD."""
    with app.app_context():
        return helpers.make_people()


@pytest.fixture
def redis_url():
    if not TEST_REDIS_URL:
        pytest.skip("needs a real Redis: set TEST_REDIS_URL")
    return TEST_REDIS_URL


@pytest.fixture
def stream_key(redis_url):
    """A stream key unique to this test (run id prefix), deleted afterwards."""
    import redis

    key = f"mrtest-{RUN_ID}:{uuid.uuid4().hex[:8]}:events"
    yield key
    redis.Redis.from_url(redis_url).delete(key)


@pytest.fixture
def postgres_url():
    if not TEST_DATABASE_URL:
        pytest.skip("needs a real PostgreSQL: set TEST_DATABASE_URL")
    return TEST_DATABASE_URL
