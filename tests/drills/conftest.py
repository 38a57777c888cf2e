"""Fault drills: real servers started by the drill itself (a PostgreSQL cluster, gunicorn),
bounded load, a fault injected mid-run, then every acknowledged write checked.

They take a minute or more each, so `make test` leaves them out; `make drill` runs them
(CI runs it after `make test`)."""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("MR_DRILLS") == "1" else ["test_*.py"]
