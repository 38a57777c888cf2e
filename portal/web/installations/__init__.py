"""The installation pages on one blueprint: installing from a plan (install.py), the
company's control room (control_room.py) and version changes (versions.py); what they
share is in shared.py. Importing the route modules registers their routes."""

from portal.web.installations import control_room, install, versions
from portal.web.installations.shared import bp

__all__ = ["bp", "control_room", "install", "versions"]
