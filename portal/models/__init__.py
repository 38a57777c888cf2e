"""All models, imported here so Alembic sees every table, and the domain's vocabularies."""

from portal.models.accounts import ApiToken, Company, SignInThrottle, User
from portal.models.events import Event, Lease, ServiceState
from portal.models.installations import HealthChange, Installation, InstallationRevision
from portal.models.modules import CatalogGeneration, ModuleDependency, ModuleRelease, StatusChange
from portal.models.vocabulary import (
    RELEASED,
    REPORTED_HEALTH,
    HealthStatus,
    InstallationStatus,
    ReleaseStatus,
    Role,
    Visibility,
)

__all__ = [
    "RELEASED",
    "REPORTED_HEALTH",
    "ApiToken",
    "CatalogGeneration",
    "Company",
    "Event",
    "HealthChange",
    "HealthStatus",
    "Installation",
    "InstallationRevision",
    "InstallationStatus",
    "Lease",
    "ModuleDependency",
    "ModuleRelease",
    "ReleaseStatus",
    "Role",
    "SignInThrottle",
    "ServiceState",
    "StatusChange",
    "User",
    "Visibility",
]
