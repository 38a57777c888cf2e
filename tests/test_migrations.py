"""Migrations build empty databases, and the models agree with them (`flask db check`)."""

from __future__ import annotations

import flask_migrate
import pytest
import sqlalchemy as sa

from portal import create_app
from portal.config import TestConfig
from portal.extensions import db
from tests.helpers import RUN_SUFFIX, create_postgres_database


def _upgrade_and_check(url: str, tmp_path) -> set[str]:
    app = create_app(TestConfig(url, INSTANCE_PATH=str(tmp_path)))
    with app.app_context():
        flask_migrate.upgrade()
        # `flask db check` exits non-zero (SystemExit) when models and migrations differ.
        flask_migrate.check()
        tables = set(sa.inspect(db.engine).get_table_names())
        flask_migrate.downgrade(revision="base")
        remaining = set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}
        db.session.remove()
        db.engine.dispose()
    assert remaining == set(), "downgrade to base leaves tables behind"
    return tables


def test_upgrade_builds_an_empty_sqlite_database_matching_the_models(tmp_path):
    tables = _upgrade_and_check(f"sqlite:///{tmp_path}/fresh.db", tmp_path)
    assert tables >= set(db.metadata.tables)


@pytest.mark.postgres
def test_upgrade_builds_an_empty_postgres_database_matching_the_models(postgres_url, tmp_path):
    url, drop = create_postgres_database(postgres_url, f"mr_migr_{RUN_SUFFIX}")
    try:
        tables = _upgrade_and_check(url, tmp_path)
    finally:
        drop()
    assert tables >= set(db.metadata.tables)
