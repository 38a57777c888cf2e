"""Installations: plans, installs, configuration, version changes, rollback and uninstall."""
