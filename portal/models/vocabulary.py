"""The domain's closed vocabularies, named once: roles, release statuses and visibilities,
installation statuses and health statuses.

Each value is the string stored in the database and sent in JSON (a `StrEnum` member is a
`str`, so it compares, binds and serializes as one). The models' CHECK constraints are
written from these enums by `sql_in`, so a new value is one edit here plus a migration.
"""

from __future__ import annotations

from enum import StrEnum


class Vocabulary(StrEnum):
    """A closed set of strings. (On Python 3.11 `"x" in SomeEnum` raises TypeError for a
    non-member; ask `has` instead.)"""

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(member.value for member in cls)

    @classmethod
    def has(cls, value: object) -> bool:
        """Whether `value` is one of the strings (False for anything else, e.g. a list)."""
        return isinstance(value, str) and value in cls.values()


class Role(Vocabulary):
    PLATFORM_ADMIN = "platform_admin"
    DEVELOPER = "developer"
    COMPANY_ADMIN = "company_admin"


class ReleaseStatus(Vocabulary):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    DEPRECATED = "deprecated"
    DELETED = "deleted"


class Visibility(Vocabulary):
    PUBLIC = "public"
    PRIVATE = "private"


class InstallationStatus(Vocabulary):
    INSTALLED = "installed"
    UNINSTALLED = "uninstalled"


class HealthStatus(Vocabulary):
    """An installation's health, as checks, heartbeats and silence leave it."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


# Approved, or approved and later deprecated: the releases other companies can see and
# install (a deprecated one stays installable; pages stop offering it).
RELEASED = (ReleaseStatus.APPROVED, ReleaseStatus.DEPRECATED)

# What a runtime may report about itself (a heartbeat, a check's answer): never "unknown".
REPORTED_HEALTH = (HealthStatus.HEALTHY, HealthStatus.DEGRADED, HealthStatus.UNHEALTHY)


def sql_in(column: str, values) -> str:
    """`column IN ('a', 'b')` for a CHECK constraint, in the enum's order (the constraint
    text the migrations created, so `flask db check` sees no change)."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"
