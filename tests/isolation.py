"""Isolation between tests: one rolled-back transaction, or truncation.

Most tests stay in one thread: they run inside one outer transaction that is rolled back
afterwards (the flask-sqlalchemy-lite `test_isolation()` recipe the style guide quotes). Every
engine of the app under test hands out the same connection; `begin()` on it opens a savepoint,
and sessions join it with `join_transaction_mode="create_savepoint"`, so services still commit
(a RELEASE SAVEPOINT) and roll back (to their savepoint) as they do in production. On SQLite
this relies on pysqlite's documented workaround, which portal/database.py already applies
(`isolation_level=None` and its own `BEGIN IMMEDIATE`); savepoints are plain SQL there.

The outer transaction lives across tests: the `people` rows (2 companies, 5 users) are
seeded once in a savepoint of their own and kept for every following test that asks for
them; a test that does not ask for them rolls that savepoint back first. Each test then runs
in its own savepoint, rolled back afterwards.

Tests whose rows must really be committed, because another thread, process or a live server
reads them (races, `meanwhile`, browser journeys, fake servers calling back), are marked
`@pytest.mark.truncate`: the outer transaction is rolled back before them, they commit for
real, and every table is emptied after them. A thread that is not the test's own and reaches
for the shared connection fails at once with a message saying so, rather than deadlocking.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from portal.extensions import db
from tests import helpers


class CrossThreadUse(RuntimeError):
    pass


class RolledBackDatabase:
    """The outer transaction, the people savepoint and each test's savepoint, on one
    connection of `app`'s engine. Sessions of any app on the same database (a CSRF-on app,
    an app with smaller limits) use that connection too."""

    def __init__(self, app):
        self.app = app
        with app.app_context():
            self.engine: Engine = db.engine
        self.connection: Connection | None = None
        self.people: SimpleNamespace | None = None
        self._people_savepoint = None
        self._test_savepoint = None
        self._session_class = None

    # -- the outer transaction ----------------------------------------------------------------

    def _open(self) -> None:
        if self.connection is not None:
            return
        self.connection = self.engine.connect()
        self.connection.begin()

    def close(self) -> None:
        """Roll everything back and give the connection back (before a truncation test)."""
        if self.connection is None:
            return
        self._unpatch()
        self.connection.rollback()
        self.connection.close()
        self.connection = None
        self.people = self._people_savepoint = None

    # -- per test -------------------------------------------------------------------------------

    def begin_test(self, *, with_people: bool) -> None:
        self._open()
        if self.people is not None and not with_people:
            self._people_savepoint.rollback()
            self.people = self._people_savepoint = None
        self._patch()
        if with_people and self.people is None:
            self._people_savepoint = self.connection.begin_nested()
            with self.app.app_context():
                self.people = helpers.make_people()
                db.session.remove()
        self._test_savepoint = self.connection.begin_nested()

    def end_test(self) -> None:
        with self.app.app_context():
            db.session.remove()
        if self._test_savepoint is not None and self._test_savepoint.is_active:
            self._test_savepoint.rollback()
        self._test_savepoint = None
        self._unpatch()
        if not self.connection.in_transaction() or (
            self._people_savepoint is not None and not self._people_savepoint.is_active
        ):
            # The test ended the outer transaction or the people savepoint (a raw ROLLBACK):
            # start again from nothing.
            self.close()

    # -- the patches ----------------------------------------------------------------------------

    def _patch(self) -> None:
        connection, url = self.connection, self.engine.url
        owner = threading.get_ident()

        def the_connection():
            if threading.get_ident() != owner:
                raise CrossThreadUse(
                    "another thread reached for the test's rolled-back connection: mark the "
                    "test @pytest.mark.truncate (it needs rows really committed)"
                )
            return connection

        factory = db.session.session_factory
        self._session_class = base = factory.class_

        class JoiningSession(base):
            """Flask-SQLAlchemy's session, bound to the test's connection: a session joins
            an outer transaction (join_transaction_mode) only when bound to a Connection."""

            def get_bind(self, *args, **kwargs):
                bind = super().get_bind(*args, **kwargs)
                # Any app on the test's database (one with CSRF on, other limits) joins too.
                return the_connection() if bind.url == url else bind

        factory.class_ = JoiningSession
        factory.kw["join_transaction_mode"] = "create_savepoint"
        # Instance attributes shadow the methods, for code that uses the engine directly:
        # engine.connect() hands out the one connection, whose begin() is a savepoint and whose
        # close() keeps it open (`with engine.begin() as conn:` must not end the test).
        self.engine.connect = the_connection
        connection.begin = connection.begin_nested
        connection.close = lambda: None

    def _unpatch(self) -> None:
        factory = db.session.session_factory
        if getattr(self, "_session_class", None) is not None:
            factory.class_ = self._session_class
            self._session_class = None
        factory.kw.pop("join_transaction_mode", None)
        self.engine.__dict__.pop("connect", None)
        if self.connection is not None:
            self.connection.__dict__.pop("begin", None)
            self.connection.__dict__.pop("close", None)


def truncate(app) -> None:
    """Empty every table (after a test that committed for real)."""
    with app.app_context():
        db.session.remove()
        helpers.truncate_all(db.engine)


def rows_left(app) -> dict[str, int]:
    """Row counts per table that are not empty (for the leak check)."""
    with app.app_context():
        counts = {}
        with db.engine.connect() as conn:
            for table in db.metadata.sorted_tables:
                if table.name == "catalog_generation":
                    continue
                n = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                if n:
                    counts[table.name] = n
        return counts
