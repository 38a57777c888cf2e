"""Engine settings per database: SQLite tuned so several processes and threads can write."""

from __future__ import annotations

from contextvars import ContextVar

from flask import Flask, has_request_context
from sqlalchemy import event
from sqlalchemy.engine import Engine

from portal.models.base import UTCDateTime

# Set by services/uow.unit_of_work while it runs: inside a unit of work a SQLite
# transaction takes the write lock up front (_takes_write_lock).
WRITE_INTENT: ContextVar[bool] = ContextVar("write_intent", default=False)


def engine_options(uri: str) -> dict:
    """Options for create_engine; SQLite waits for locks instead of failing at once."""
    if uri.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    # A server that accepts and never answers must not hang a request (or /health) forever.
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 5}}


def _takes_write_lock() -> bool:
    """Write transactions take SQLite's write lock when they start.

    A deferred transaction that reads first and writes later cannot wait for the lock when
    another writer got in between: SQLite answers "database is locked" at once. Taking the
    lock up front (BEGIN IMMEDIATE) makes concurrent writers queue on the busy timeout.
    In a request, only a unit of work writes; reads stay deferred so they never wait
    behind writers (WAL), and an upload is never streamed while holding the lock. Outside
    requests (CLI, worker, tests calling services) every transaction takes it.
    """
    return WRITE_INTENT.get() or not has_request_context()


def configure_engine(app: Flask, engine: Engine) -> None:
    """Install the SQLite pragmas and the explicit BEGIN (pysqlite's documented workaround)."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _takes_write_lock() else "BEGIN")


# Schema only migrations know, which Alembic must not compare: the generated tsvector
# column and its GIN indexes (SQLite has no tsvector, so the model leaves them out).
UNMODELED = frozenset(
    {
        ("column", "search_vector"),
        ("index", "ix_modules_search"),
        ("index", "ix_modules_latest_search"),
    }
)
# PostgreSQL-only indexes the model declares with ddl_if: compared on PostgreSQL only.
POSTGRES_ONLY_INDEXES = frozenset({"ix_modules_name_trgm", "ix_modules_latest_name_trgm"})


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's autogenerate filter (used by `flask db migrate` and `flask db check`)."""
    if (type_, name) in UNMODELED:
        return False
    if type_ == "index" and name in POSTGRES_ONLY_INDEXES:
        from alembic import context

        return context.get_context().dialect.name == "postgresql"
    return True


def render_item(type_, obj, autogen_context):
    """How autogenerate writes our column types into a revision: UTCDateTime as the plain
    type it stores, so that revisions never import application code (history must not
    break when a model helper moves)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False
