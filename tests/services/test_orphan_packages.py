"""No package file outlives a publish that did not commit (manifest.md: a failed upload
leaves no file and no row behind): the publish removes its own file even when the database
that failed cannot be asked, and the worker's sweep removes what a killed process left."""

from __future__ import annotations

import os
import time

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import ModuleRelease
from portal.services.publishing.releases import package_store
from portal.services.publishing.sweep import sweep_orphan_packages
from tests import packaging as pkg
from tests.helpers import count, empty_store, meanwhile, publish_package, stored_files


@pytest.fixture(autouse=True)
def _empty_store(app):
    empty_store(app)


def _admin_connection(app):
    url = sa.engine.make_url(app.config["SQLALCHEMY_DATABASE_URI"]).set(database="postgres")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


@pytest.mark.truncate
def test_a_publish_whose_database_goes_away_leaves_no_file(app, people, postgres_url):
    """The INSERT finds its connection killed, and the database refuses new connections
    while the publish cleans up, so the cleanup cannot ask whether the file is used."""
    name = sa.engine.make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database
    admin = _admin_connection(app)

    def database_goes_away():
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )

    data = pkg.zip_package(pkg.manifest_yaml("orphan-check"))
    try:
        with app.app_context():
            with (
                meanwhile(
                    app,
                    database_goes_away,
                    at=lambda sql, _p: sql.startswith("INSERT INTO modules"),
                ) as fired,
                pytest.raises(sa.exc.OperationalError),
            ):
                publish_package(data, actor_email=people.developer.email)
            assert fired
            db.session.remove()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    with app.app_context():
        db.engine.dispose()  # the pool's killed connections
        assert count(ModuleRelease) == 0
    assert stored_files(app) == []


def test_the_sweep_removes_old_unnamed_packages_and_temp_files_and_keeps_the_rest(app, people):
    with app.app_context():
        kept = publish_package(
            pkg.zip_package(pkg.manifest_yaml("kept")), actor_email=people.developer.email
        )
        kept_digest = kept.package_sha256
        store = package_store()
        with store.temp_file() as fh:
            fh.write(b"an orphan's bytes")
        orphan = store.commit(fh.name, "ab" * 32)
        with store.temp_file() as fh:
            fh.write(b"a crashed upload")
        stale_temp = fh.name
        young = store.commit(_temp_with(store, b"young"), "cd" * 32)
        hour_ago = time.time() - 3700
        for path in (orphan, stale_temp, store.path_for(kept_digest)):
            os.utime(path, (hour_ago, hour_ago))

        report = sweep_orphan_packages()

        assert (report.packages_removed, report.temp_files_removed) == (1, 1)
        assert not orphan.exists() and not os.path.exists(stale_temp)
        assert store.exists(kept_digest)  # named by a release, however old
        assert young.exists()  # too young: its row may be about to commit
        db.session.remove()


def _temp_with(store, data: bytes) -> str:
    with store.temp_file() as fh:
        fh.write(data)
    return fh.name


def test_storage_sweep_is_a_command(app, people):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["storage", "sweep", "--min-age", "0"])
    assert result.exit_code == 0, result.output
    assert "removed 0 orphan packages" in result.output
