"""The publishing service called directly (a developer publishes a release): the package
store and the rows move together, refusals carry their pointers, and edits, resubmissions
and deletions leave the history and events they should."""

from __future__ import annotations

import hashlib
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.extensions import db
from portal.models import Event, ModuleRelease, StatusChange
from portal.services.accounts import users
from portal.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from portal.services.publishing import releases
from portal.services.publishing.submissions import Submission
from tests import packaging as pkg
from tests.helpers import (
    count,
    empty_store,
    publish_manifest,
    publish_package,
    registry_state,
    set_release_status,
    stored_files,
)

PACKAGE = pkg.zip_package(pkg.manifest_yaml(), folder="purchasing")
DIGEST = hashlib.sha256(PACKAGE).hexdigest()
STORED = f"{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST}"


@pytest.fixture(autouse=True)
def _empty_store(app):
    empty_store(app)


@pytest.fixture
def ctx(app, people):
    """An app context with the people, for calling services directly."""
    with app.app_context():
        yield people
        db.session.remove()


def user(email: str):
    return users.user_by_email(email)


# --- Publishing and the store -----------------------------------------------------------------


def test_publishing_a_package_stores_it_by_digest_with_its_scan_report(app, ctx):
    release = publish_package(PACKAGE, actor_email=ctx.developer.email)
    assert (release.status, release.visibility, release.publisher.slug) == (
        "pending",
        "public",
        "acme",
    )
    assert release.name_fold == "purchaslng"  # folded: hyphens dropped, i -> l
    assert release.package_sha256 == DIGEST and release.package_size == len(PACKAGE)
    report = release.scan_report
    assert report["kind"] == "zip" and report["manifest_path"] == "purchasing/module.yaml"
    assert {f["path"] for f in report["files"]} == {
        "purchasing/module.yaml",
        "purchasing/src/main.py",
    }
    assert stored_files(app) == [STORED]  # moved out of tmp/, nothing else


def test_build_metadata_is_kept_but_does_not_make_a_new_version(app, ctx):
    first = publish_manifest(pkg.manifest(version="1.0.0+a"), actor_email=ctx.developer.email)
    assert first.version == "1.0.0+a"
    with pytest.raises(Conflict) as exc:
        publish_manifest(pkg.manifest(version="1.0.0+b"), actor_email=ctx.developer.email)
    assert list(exc.value.fields) == ["/version"]


def test_a_refused_duplicate_leaves_the_original_package_in_place(app, ctx):
    publish_package(PACKAGE, actor_email=ctx.developer.email)
    db.session.remove()
    with pytest.raises(Conflict):
        publish_package(PACKAGE, actor_email=ctx.developer.email)
    db.session.remove()
    assert count(ModuleRelease) == 1
    # The original is kept; the second upload's temp file is its caller's to remove.
    assert STORED in stored_files(app)


@pytest.fixture
def racing_writer(app):
    """Plays a second publisher whose identical release lands between this one's checks and
    its commit: at the first flush it adds the same (name, version), so the real unique
    constraint refuses the row, as when two requests race."""
    fired = []

    def before_flush(session, _flush_context, _instances):
        if fired:
            return
        for obj in list(session.new):
            if isinstance(obj, ModuleRelease):
                fired.append(obj.name)
                session.add(
                    ModuleRelease(
                        name=obj.name,
                        name_fold=obj.name_fold,
                        version=obj.version,
                        version_key=obj.version_key,
                        description="the other writer",
                        author="someone",
                        manifest={},
                        publisher_id=obj.publisher_id,
                        owner_id=obj.owner_id,
                    )
                )

    sa.event.listen(Session, "before_flush", before_flush)
    yield fired
    sa.event.remove(Session, "before_flush", before_flush)


def test_when_the_database_refuses_the_row_the_package_just_stored_is_removed(
    app, ctx, racing_writer
):
    with pytest.raises(Conflict) as exc:
        publish_package(PACKAGE, actor_email=ctx.developer.email)
    assert racing_writer == ["purchasing"]
    assert "exists already" in exc.value.message
    db.session.remove()
    state = registry_state(app)
    assert (state["releases"], state["events"], state["status_changes"]) == (0, 0, 0)
    # No digest path left; only the caller's own temp file (the API's request removes it).
    assert [f for f in state["files"] if not f.startswith("tmp/")] == []


def test_only_developers_and_platform_admins_publish(app, ctx):
    with pytest.raises(PermissionDenied):
        publish_manifest(pkg.manifest(), actor_email=ctx.acme_admin.email)
    with pytest.raises(ValidationFailed) as exc:
        publish_manifest(pkg.manifest(), actor_email=ctx.admin.email)
    assert list(exc.value.fields) == ["/publisher"]
    release = publish_manifest(pkg.manifest(), actor_email=ctx.admin.email, publisher="globex")
    assert release.publisher.slug == "globex"


@pytest.mark.parametrize("name", ["purchasing", "purchaslng", "purchas1ng", "pur-chasing"])
def test_another_company_cannot_take_a_name_or_a_look_alike(app, ctx, name):
    publish_manifest(pkg.manifest("purchasing"), actor_email=ctx.developer.email)
    db.session.remove()
    expected = PermissionDenied if name == "purchasing" else Conflict
    with pytest.raises(expected) as exc:
        publish_manifest(pkg.manifest(name, "9.0.0"), actor_email=ctx.globex_dev.email)
    if expected is Conflict:
        assert list(exc.value.fields) == ["/name"]


@pytest.mark.truncate
def test_two_companies_claiming_one_new_name_at_once_cannot_both_own_it(app, people):
    """Ownership is decided by the first release of a name: a race between two companies
    publishing different versions of the same new name must leave one owner."""
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def claim(email: str, version: str) -> None:
        with app.app_context():
            barrier.wait()
            try:
                publish_manifest(pkg.manifest("shared-name", version), actor_email=email)
                outcomes.append("published")
            except (Conflict, PermissionDenied) as exc:
                outcomes.append(type(exc).__name__)
            finally:
                db.session.remove()

    for _ in range(5):
        threads = [
            threading.Thread(target=claim, args=(people.developer.email, "1.0.0")),
            threading.Thread(target=claim, args=(people.globex_dev.email, "2.0.0")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        with app.app_context():
            owners = db.session.execute(
                sa.select(sa.func.count(sa.distinct(ModuleRelease.publisher_id))).where(
                    ModuleRelease.name == "shared-name"
                )
            ).scalar_one()
            db.session.execute(sa.delete(Event))
            db.session.execute(sa.delete(StatusChange))
            db.session.execute(sa.delete(ModuleRelease))
            db.session.commit()
            db.session.remove()
        assert owners == 1, outcomes
        outcomes.clear()


# --- Editing, resubmitting, deleting -----------------------------------------------------------


def test_an_edit_records_only_the_fields_that_changed(app, ctx):
    release = publish_manifest(pkg.manifest(category="erp"), actor_email=ctx.developer.email)
    updated = releases.update_release(
        release.id,
        {"category": "erp", "description": "New words", "name": "ignored"},
        actor=user(ctx.developer.email),
    )
    assert updated.description == "New words" and updated.name == "purchasing"
    event = db.session.execute(sa.select(Event).where(Event.type == "module.updated")).scalar_one()
    assert event.data == {"changed": ["description"]}


def test_an_edit_over_a_columns_length_is_refused_before_the_database_sees_it(app, ctx):
    release = publish_manifest(pkg.manifest(), actor_email=ctx.developer.email)
    with pytest.raises(ValidationFailed) as exc:
        releases.update_release(
            release.id,
            {"category": "c" * 65, "display_name": "d" * 201, "description": "   "},
            actor=user(ctx.developer.email),
        )
    assert sorted(exc.value.fields) == ["/category", "/description", "/display_name"]


def test_resubmitting_a_rejected_release_makes_it_pending_with_a_status_change(app, ctx):
    release = publish_manifest(pkg.manifest(), actor_email=ctx.developer.email)
    module_id = release.id
    db.session.remove()
    set_release_status(app, module_id, "rejected", "Say what it does.")
    sub = Submission(manifest_json=pkg.manifest(description="Buys things for Acme"))
    updated = releases.update_release(module_id, {}, sub, actor=user(ctx.developer.email))
    assert (updated.status, updated.status_reason) == ("pending", None)
    assert updated.description == "Buys things for Acme"
    changes = db.session.execute(
        sa.select(StatusChange.from_status, StatusChange.to_status)
        .where(StatusChange.module_id == module_id)
        .order_by(StatusChange.id)
    ).all()
    assert changes[-1] == ("rejected", "pending")


@pytest.mark.parametrize("status", ["approved", "deprecated"])
def test_a_manifest_change_after_approval_is_a_conflict(app, ctx, status):
    release = publish_manifest(pkg.manifest(), actor_email=ctx.developer.email)
    module_id = release.id
    db.session.remove()
    set_release_status(app, module_id, status)
    sub = Submission(manifest_json=pkg.manifest(description="changed"))
    with pytest.raises(Conflict):
        releases.update_release(module_id, {}, sub, actor=user(ctx.developer.email))


def test_a_resubmission_points_at_the_name_or_version_that_differs(app, ctx):
    release = publish_manifest(pkg.manifest(), actor_email=ctx.developer.email)
    sub = Submission(manifest_json=pkg.manifest("sales", "2.0.0"))
    with pytest.raises(ValidationFailed) as exc:
        releases.update_release(release.id, {}, sub, actor=user(ctx.developer.email))
    assert exc.value.fields == {"/name": "must be purchasing", "/version": "must be 1.0.0"}


def test_delete_keeps_the_row_and_its_package_for_audit(app, ctx):
    release = publish_package(PACKAGE, actor_email=ctx.developer.email)
    module_id = release.id
    releases.delete_release(module_id, actor=user(ctx.developer.email))
    db.session.remove()
    kept = db.session.get(ModuleRelease, module_id)
    assert kept.status == "deleted" and kept.deleted_at is not None
    change = (
        db.session.execute(sa.select(StatusChange).order_by(StatusChange.id.desc()))
        .scalars()
        .first()
    )
    assert (change.from_status, change.to_status) == ("pending", "deleted")
    assert db.session.execute(
        sa.select(Event.type).where(Event.module_id == module_id).order_by(Event.id)
    ).scalars().all() == ["module.registered", "module.deleted"]
    assert STORED in stored_files(app)
    with pytest.raises(NotFound):
        releases.package_path(module_id, actor=user(ctx.admin.email))


def test_a_package_missing_from_the_store_is_not_found_rather_than_an_error(app, ctx):
    release = publish_package(PACKAGE, actor_email=ctx.developer.email)
    releases.package_store().delete(DIGEST)
    with pytest.raises(NotFound):
        releases.package_path(release.id, actor=user(ctx.developer.email))
