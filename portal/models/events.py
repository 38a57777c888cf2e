"""The event outbox and the leases that keep one relay (or scheduler) active at a time."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.base import JSONType, UTCDateTime, utcnow


class Event(db.Model):
    """A lifecycle event, written in the same transaction as the change it describes."""

    __tablename__ = "events"
    __table_args__ = (
        # The relay's work list: only unpublished rows, in id order.
        sa.Index(
            "ix_events_unpublished",
            "id",
            sqlite_where=sa.text("published_at IS NULL"),
            postgresql_where=sa.text("published_at IS NULL"),
        ),
        sa.Index("ix_events_company_id", "company", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    type: Mapped[str] = mapped_column(sa.String(64), index=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(254), default="system")
    # Slugs and names rather than foreign keys: the log outlives what it describes.
    company: Mapped[str] = mapped_column(sa.String(64), default="")
    module: Mapped[str] = mapped_column(sa.String(64), default="", index=True)
    version: Mapped[str] = mapped_column(sa.String(128), default="")
    module_id: Mapped[int | None] = mapped_column()
    installation_id: Mapped[int | None] = mapped_column()
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Lease(db.Model):
    """A named lease: the holder renews it; others take it over once it has expired."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(sa.String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ServiceState(db.Model):
    """Small facts the worker learns and every web process reports (e.g. registry status)."""

    __tablename__ = "service_state"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[dict] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
