"""The unit of work: one transaction around a service's change and its events."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.database import WRITE_INTENT
from portal.extensions import db
from portal.services.errors import Conflict

_DEPTH: ContextVar[int] = ContextVar("uow_depth", default=0)


@contextmanager
def unit_of_work(conflict_message: str = "") -> Iterator[Session]:
    """Commit on success, roll back on any error; nested units join the outer one.

    A unique or check constraint that fires at commit (two requests racing for the same
    row) becomes a Conflict (409), never a 500.
    """
    session = db.session()  # the current session itself, not the scoped proxy
    if _DEPTH.get() > 0:
        yield session
        return
    if session.get_bind().dialect.name == "sqlite":
        # Changes made before the unit would be committed by the line below, outside the
        # unit and its Conflict mapping: a service must make them inside the unit.
        if session.new or session.deleted or any(map(session.is_modified, session.dirty)):
            raise RuntimeError("unit_of_work() started with unsaved changes in the session")
        if session.in_transaction():
            # End the read-only snapshot so the write transaction starts with BEGIN
            # IMMEDIATE (a deferred transaction cannot wait for the lock once it has read).
            session.commit()
    depth, intent = _DEPTH.set(1), WRITE_INTENT.set(True)
    try:
        yield session
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(conflict_message or "This conflicts with an existing record.") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        _DEPTH.reset(depth)
        WRITE_INTENT.reset(intent)


def advisory_lock(namespace: str, key: object) -> None:
    """Inside a unit of work on PostgreSQL: wait for, then hold until the transaction ends,
    the advisory lock named by `namespace` and `key` (hashed to the int64 PostgreSQL keys
    its locks by), so writers of the same thing take turns. Under READ COMMITTED a check
    made after it sees what the previous holder committed. On SQLite nothing is needed:
    the unit of work's BEGIN IMMEDIATE already serializes every writer."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"{namespace}:{key}".encode()).digest()
    lock_key = int.from_bytes(digest[:8], "big", signed=True)
    db.session.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_key)))
