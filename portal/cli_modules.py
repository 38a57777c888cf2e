"""`flask modules ...`: validate a manifest or package locally, start a new module."""

from __future__ import annotations

from flask.cli import AppGroup

modules_cli = AppGroup("modules", help="Validate and scaffold modules.")
