"""All models, imported here so Alembic sees every table."""

from portal.models.accounts import ROLES, ApiToken, Company, SignInFailure, User
from portal.models.events import Event, Lease, ServiceState
from portal.models.installations import (
    HEALTH_STATUSES,
    INSTALLATION_STATUSES,
    HealthChange,
    Installation,
    InstallationRevision,
)
from portal.models.modules import (
    STATUSES,
    VISIBILITIES,
    CatalogGeneration,
    ModuleDependency,
    ModuleRelease,
    StatusChange,
)

__all__ = [
    "HEALTH_STATUSES",
    "INSTALLATION_STATUSES",
    "HealthChange",
    "Installation",
    "InstallationRevision",
    "ROLES",
    "STATUSES",
    "VISIBILITIES",
    "ApiToken",
    "CatalogGeneration",
    "Company",
    "Event",
    "Lease",
    "ModuleDependency",
    "ModuleRelease",
    "SignInFailure",
    "ServiceState",
    "StatusChange",
    "User",
]
