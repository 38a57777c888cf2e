"""Module releases, their dependencies and status history."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.models.accounts import Company, User
from portal.models.base import JSONType, UTCDateTime, utcnow
from portal.models.vocabulary import ReleaseStatus, Visibility, sql_in

# Version sort keys compare byte by byte; PostgreSQL's default collation would not.
VersionKey = sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")


class ModuleRelease(db.Model):
    """One (name, version) with its manifest, optional package and review status."""

    __tablename__ = "modules"
    __table_args__ = (
        # Build metadata is not part of the key, so 1.0.0+a and 1.0.0+b collide (manifest.md).
        sa.UniqueConstraint("name", "version_key", name="uq_modules_name_version_key"),
        sa.CheckConstraint(sql_in("status", ReleaseStatus), name="status_known"),
        sa.CheckConstraint(sql_in("visibility", Visibility), name="visibility_known"),
        sa.Index("ix_modules_status_created", "status", "created_at"),
        sa.Index(
            "ix_modules_latest_name",
            "name",
            sqlite_where=sa.text("is_latest"),
            postgresql_where=sa.text("is_latest"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), index=True)
    # The name with hyphens dropped and look-alikes folded (0/o, 1/l/i): typosquat guard.
    name_fold: Mapped[str] = mapped_column(sa.String(64), index=True)
    version: Mapped[str] = mapped_column(sa.String(128))
    version_key: Mapped[str] = mapped_column(VersionKey)
    prerelease: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # Per name, the newest approved release (a stable one preferred): kept current by the
    # service layer in the same transaction as each status change (latest=true, cards).
    is_latest: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    display_name: Mapped[str | None] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.String(500))
    author: Mapped[str] = mapped_column(sa.String(200))
    category: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    tags: Mapped[list] = mapped_column(JSONType, default=list)
    # json, not jsonb, on PostgreSQL: the manifest keeps its key order (configuration fields)
    manifest: Mapped[dict] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(20), default=ReleaseStatus.PENDING)
    status_reason: Mapped[str | None] = mapped_column(sa.Text)
    visibility: Mapped[str] = mapped_column(sa.String(10), default=Visibility.PUBLIC)
    publisher_id: Mapped[int] = mapped_column(sa.ForeignKey("companies.id"), index=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    package_filename: Mapped[str | None] = mapped_column(sa.String(255))
    package_size: Mapped[int | None] = mapped_column(sa.BigInteger)
    package_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    scan_report: Mapped[dict | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    publisher: Mapped[Company] = relationship(lazy="joined")
    owner: Mapped[User] = relationship()
    dependencies: Mapped[list[ModuleDependency]] = relationship(
        back_populates="module",
        cascade="all, delete-orphan",
        order_by="ModuleDependency.position",
        lazy="selectin",
    )

    def __repr__(self) -> str:
        return f"<ModuleRelease {self.name} {self.version} {self.status}>"


class ModuleDependency(db.Model):
    __tablename__ = "module_dependencies"
    __table_args__ = (
        sa.UniqueConstraint("module_id", "name", name="uq_module_dependencies_module_id_name"),
        sa.CheckConstraint("type IN ('module', 'service')", name="type_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    module_id: Mapped[int] = mapped_column(sa.ForeignKey("modules.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(sa.String(64), index=True)
    constraint: Mapped[str] = mapped_column(sa.String(256), default="*")
    type: Mapped[str] = mapped_column(sa.String(10), default="module")
    optional: Mapped[bool] = mapped_column(default=False)

    module: Mapped[ModuleRelease] = relationship(back_populates="dependencies")


class StatusChange(db.Model):
    """Who moved a release from one status to another, when and why."""

    __tablename__ = "module_status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    module_id: Mapped[int] = mapped_column(
        sa.ForeignKey("modules.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[str | None] = mapped_column(sa.String(20))
    to_status: Mapped[str] = mapped_column(sa.String(20))
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    actor: Mapped[User | None] = relationship()


class CatalogGeneration(db.Model):
    """One row counting changes to the catalog: database triggers (migration 0009) add one
    on every write to modules or companies, whoever makes it. What is computed from the
    catalog (search results, filter menus) is cached under the count it was read at, so a
    cache is never stale and needs no invalidation from the code that writes."""

    __tablename__ = "catalog_generation"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(sa.BigInteger, default=0)


# The weighted full-text document of a release (PostgreSQL only): name and display name
# weigh most (A), then tags (B), then the description (C), all in the unstemmed 'simple'
# configuration so that the query's prefix terms meet the same lexemes. It is a generated
# column that migration 0008 adds, with its GIN indexes (all rows, and latest rows only);
# the model leaves it out because SQLite has no tsvector (database.include_object).
SEARCH_VECTOR = sa.literal_column("modules.search_vector", TSVECTOR)

# PostgreSQL-only indexes; ddl_if keeps SQLite (and `flask db check` there) unaware of them.
sa.Index(
    "ix_modules_name_trgm",
    ModuleRelease.name,
    postgresql_using="gin",
    postgresql_ops={"name": "gin_trgm_ops"},
).ddl_if(dialect="postgresql")
sa.Index(
    "ix_modules_latest_name_trgm",
    ModuleRelease.name,
    postgresql_using="gin",
    postgresql_ops={"name": "gin_trgm_ops"},
    postgresql_where=sa.text("is_latest"),
).ddl_if(dialect="postgresql")
