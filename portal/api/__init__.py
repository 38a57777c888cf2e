"""The JSON API (/api/v1): bearer tokens only, so no cookies and no CSRF. One module per
feature, as in services and pages; importing them registers their routes on the blueprint."""

from portal.api import accounts, activity, catalog, publishing, review
from portal.api.base import bp
from portal.api.installations import installs, lifecycle

__all__ = ["accounts", "activity", "bp", "catalog", "installs", "lifecycle"]
__all__ += ["publishing", "review"]
