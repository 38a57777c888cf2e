"""The embedded SQLite mode under concurrent writers: no "database is locked"."""

from __future__ import annotations

import threading

import flask_migrate
import pytest

from portal import create_app
from portal.config import TestConfig
from portal.extensions import db
from portal.models import ApiToken
from portal.services.accounts import users
from tests.helpers import PASSWORD, count, login


@pytest.fixture
def sqlite_app(tmp_path):
    """Always SQLite, whatever backend the rest of the run uses."""
    app = create_app(TestConfig(f"sqlite:///{tmp_path}/embedded.db", INSTANCE_PATH=str(tmp_path)))
    with app.app_context():
        flask_migrate.upgrade()
        users.create_company("acme", "Acme")
        for i in range(8):
            users.create_user(f"dev{i}@acme.test", PASSWORD, "developer", "acme")
        db.session.remove()
    yield app
    with app.app_context():
        db.engine.dispose()


def test_journal_is_wal_with_a_busy_timeout(sqlite_app):
    with sqlite_app.app_context():
        conn = db.session.connection()
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        db.session.remove()


def test_many_threads_writing_at_once_never_see_database_is_locked(sqlite_app):
    """Each thread signs in and creates tokens through the pages, all at the same moment."""
    errors: list[str] = []
    start = threading.Barrier(8)

    def writer(i: int) -> None:
        client = sqlite_app.test_client()
        login(client, f"dev{i}@acme.test")
        start.wait()
        for n in range(10):
            resp = client.post("/tokens", data={"name": f"t{i}-{n}"})
            if resp.status_code != 201:
                errors.append(f"{resp.status_code}: {resp.get_data(as_text=True)[:200]}")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with sqlite_app.app_context():
        assert count(ApiToken) == 80
        db.session.remove()
