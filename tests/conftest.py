"""Test fixtures: a fresh database per run (PostgreSQL with TEST_DATABASE_URL, else a
temporary SQLite file), migrations applied once, each test in a rolled-back transaction
(tests marked `truncate` commit for real and tables are emptied after them; see
tests/isolation.py), and a unique Redis key prefix per run (TEST_REDIS_URL).

Under pytest-xdist every worker is a run of its own: its own database, storage directory and
Redis key prefix (RUN_ID is drawn per process); live servers take ports the OS chooses."""

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
from tests import helpers, isolation
from tests.fake_servers import RuntimeServer

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
    # Under pytest-xdist the controller sees every worker's reports and decides; a worker
    # (it has `workerinput`) only runs tests.
    if hasattr(session.config, "workerinput"):
        return
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


@pytest.fixture(scope="session")
def csrf_app(app, database_url):
    """The app as users get it: the same database and store as `app`, but with CSRF
    protection on (TestConfig turns it off elsewhere). The browser journeys serve it, and
    tests/web/test_csrf.py checks the 400 without a token. In a rolled-back test it uses the
    test's connection, so it sees the same uncommitted rows as `app`."""
    csrf_app = create_app(
        TestConfig(
            database_url,
            WTF_CSRF_ENABLED=True,
            MODULE_STORAGE_PATH=app.config["MODULE_STORAGE_PATH"],
            INSTANCE_PATH=app.config["INSTANCE_PATH"],
        )
    )
    yield csrf_app
    with csrf_app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def rolled_back_db(app):
    """The outer transaction the single-thread tests share (tests/isolation.py)."""
    database = isolation.RolledBackDatabase(app)
    yield database
    database.close()


def _truncating(request) -> bool:
    return request.node.get_closest_marker("truncate") is not None


@pytest.fixture(autouse=True)
def _isolate_database(request):
    """A test that uses the app runs in a savepoint of the shared outer transaction, rolled
    back afterwards; a test marked `truncate` commits for real and every table is emptied
    after it (threads, processes and live servers cannot share one transaction)."""
    if "app" not in request.node.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    database = request.getfixturevalue("rolled_back_db")
    if _truncating(request):
        database.close()
        yield
        isolation.truncate(app)
        return
    database.begin_test(with_people="people" in request.node.fixturenames)
    yield
    database.end_test()


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
def people(request, app, rolled_back_db):
    """Two companies (acme, globex) and a user of every role; password helpers.PASSWORD.
    Seeded once and kept across rolled-back tests; committed afresh for a `truncate` test."""
    if not _truncating(request):
        return rolled_back_db.people
    with app.app_context():
        people = helpers.make_people()
        db.session.remove()
        return people


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


@pytest.fixture
def runtime():
    """A fake module runtime on 127.0.0.1 (tests/fake_servers.py), stopped afterwards."""
    server = RuntimeServer()
    yield server
    server.stop()
