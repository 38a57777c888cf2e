"""A company's installations of module releases, and their revisions."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.accounts import Company, User
from portal.models.base import JSONType, UTCDateTime, utcnow
from portal.models.modules import ModuleRelease
from portal.models.vocabulary import HealthStatus, InstallationStatus, sql_in

# The partial unique index's condition: at most one active installation per module name.
_ACTIVE = f"status = '{InstallationStatus.INSTALLED}'"


class Installation(db.Model):
    """One company's use of one module (the record outlives an uninstall)."""

    __tablename__ = "installations"
    __table_args__ = (
        # At most one active installation per (company, module name), on both databases.
        sa.Index(
            "uq_installations_active_module",
            "company_id",
            "module_name",
            unique=True,
            sqlite_where=sa.text(_ACTIVE),
            postgresql_where=sa.text(_ACTIVE),
        ),
        sa.CheckConstraint(sql_in("status", InstallationStatus), name="status_known"),
        sa.CheckConstraint(sql_in("health_status", HealthStatus), name="health_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(sa.ForeignKey("companies.id"), index=True)
    module_name: Mapped[str] = mapped_column(sa.String(64))
    module_id: Mapped[int] = mapped_column(sa.ForeignKey("modules.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(20), default=InstallationStatus.INSTALLED)
    config: Mapped[dict] = mapped_column(JSONType, default=dict)
    endpoint_url: Mapped[str | None] = mapped_column(sa.String(2048))
    revision: Mapped[int] = mapped_column(default=1)
    health_status: Mapped[str] = mapped_column(sa.String(20), default=HealthStatus.UNKNOWN)
    health_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    health_latency_ms: Mapped[int | None] = mapped_column()
    health_message: Mapped[str | None] = mapped_column(sa.String(500))
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    uninstalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    company: Mapped[Company] = relationship(lazy="joined")
    release: Mapped[ModuleRelease] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<Installation {self.module_name} for {self.company_id} rev {self.revision}>"


class InstallationRevision(db.Model):
    """The release and configuration an installation had at one revision."""

    __tablename__ = "installation_revisions"
    __table_args__ = (
        sa.UniqueConstraint(
            "installation_id", "revision", name="uq_installation_revisions_installation_revision"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("installations.id", ondelete="CASCADE"), index=True
    )
    revision: Mapped[int] = mapped_column()
    module_id: Mapped[int] = mapped_column(sa.ForeignKey("modules.id"))
    version: Mapped[str] = mapped_column(sa.String(128))
    config: Mapped[dict] = mapped_column(JSONType, default=dict)
    endpoint_url: Mapped[str | None] = mapped_column(sa.String(2048))
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    actor: Mapped[User | None] = relationship(lazy="joined")
    release: Mapped[ModuleRelease] = relationship(lazy="joined")


class HealthChange(db.Model):
    """The history of an installation's health: one row per change of status."""

    __tablename__ = "installation_health_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("installations.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[str] = mapped_column(sa.String(20))
    to_status: Mapped[str] = mapped_column(sa.String(20))
    source: Mapped[str] = mapped_column(sa.String(20))  # check | heartbeat | silence
    message: Mapped[str | None] = mapped_column(sa.String(500))
    latency_ms: Mapped[int | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
