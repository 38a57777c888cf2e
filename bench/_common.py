"""Pieces every benchmark shares (files starting with _ are not benchmarks)."""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from urllib.parse import urlsplit, urlunsplit


def fresh_postgres(spec: str, stack: ExitStack, prefix: str) -> tuple[str, str]:
    """A new, empty PostgreSQL database on the server of `spec`, dropped by `stack`;
    returns (url, "postgresql")."""
    import psycopg

    parts = urlsplit(spec.replace("postgresql+psycopg://", "postgresql://"))
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    stack.callback(drop)
    return urlunsplit(parts._replace(path=f"/{name}")), "postgresql"
