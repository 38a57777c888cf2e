"""The unit of work: one transaction around a service's change and its events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.extensions import db
from portal.services.errors import Conflict


@contextmanager
def unit_of_work(conflict_message: str = "") -> Iterator[Session]:
    """Commit on success, roll back on any error.

    A unique or check constraint that fires at commit (two requests racing for the same
    row) becomes a Conflict (409), never a 500.
    """
    session = db.session
    try:
        yield session
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(conflict_message or "This conflicts with an existing record.") from exc
    except BaseException:
        session.rollback()
        raise
