"""Publishing releases: register, update or resubmit, soft-delete. Packages land in the
content-addressed store only once everything is checked, and leave it if the row fails."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from portal import events
from portal.extensions import db
from portal.lib.versions import Version, sort_key
from portal.models import (
    Company,
    ModuleDependency,
    ModuleRelease,
    ReleaseStatus,
    Role,
    StatusChange,
    User,
    Visibility,
)
from portal.models.base import utcnow
from portal.services.accounts.access import is_admin, may_publish
from portal.services.catalog import queries as catalog
from portal.services.catalog.latest import refresh_latest
from portal.services.catalog.names import fold_name
from portal.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from portal.services.publishing.storage import PackageStore
from portal.services.publishing.submissions import CheckedSubmission, Submission, read_submission
from portal.services.uow import advisory_lock, unit_of_work

# A release whose manifest and package may still be replaced: not yet decided, or rejected
# (resubmitting a rejected one makes it pending again).
RESUBMITTABLE = (ReleaseStatus.PENDING, ReleaseStatus.REJECTED)
EDITABLE_FIELDS = ("visibility", "description", "display_name", "category", "tags")
# The manifest schema's limits, which are also the columns' lengths.
TEXT_LIMITS = {"description": 500, "display_name": 200, "category": 64}


def package_store() -> PackageStore:
    return PackageStore(current_app.config["MODULE_STORAGE_PATH"])


def _require_publisher(actor: User) -> None:
    if not may_publish(actor):
        raise PermissionDenied("Your role does not allow this.")


def _publisher_for(actor: User, requested: str | None) -> Company:
    """Developers publish for their own company; platform admins must name one."""
    if is_admin(actor):
        if not requested:
            raise ValidationFailed(
                "Name the publisher company.",
                errors=[{"pointer": "/publisher", "message": "is required for platform admins"}],
            )
        company = db.session.execute(sa.select(Company).where(Company.slug == requested)).scalar()
        if company is None:
            raise ValidationFailed(
                "Unknown publisher.",
                errors=[{"pointer": "/publisher", "message": f"no company {requested!r}"}],
            )
        return company
    if requested and requested != actor.company.slug:
        raise ValidationFailed(
            "You publish for your own company only.",
            errors=[{"pointer": "/publisher", "message": f"must be {actor.company.slug!r}"}],
        )
    return actor.company


def _check_name_rules(name: str, version: str, publisher: Company) -> None:
    """Ownership (403), look-alikes of another company's name (409), duplicates (409)."""
    owner = catalog.name_owner(name)
    if owner is not None and owner != publisher.id:
        raise PermissionDenied(f"The name {name!r} belongs to another publisher.")
    if owner is None:
        clash = db.session.execute(
            sa.select(ModuleRelease.name)
            .where(
                ModuleRelease.name_fold == fold_name(name),
                ModuleRelease.publisher_id != publisher.id,
            )
            .limit(1)
        ).scalar()
        if clash:
            raise Conflict(
                f"The name {name!r} is too close to {clash!r}, which another publisher owns.",
                errors=[{"pointer": "/name", "message": f"too close to the existing {clash!r}"}],
            )
    if _existing(name, version) is not None:
        raise Conflict(
            f"{name} {version} exists already.",
            errors=[{"pointer": "/version", "message": "this version exists already"}],
        )


def _serialize_claims(name: str) -> None:
    """Make writers claiming one folded name take turns until their transaction ends.

    SQLite's write transaction (BEGIN IMMEDIATE) already serializes every writer; on
    PostgreSQL a transaction-level advisory lock keyed by the folded name does, and under
    READ COMMITTED the checks after it see what the previous holder committed.
    """
    advisory_lock("module-name", fold_name(name))


def _existing(name: str, version: str) -> int | None:
    return db.session.execute(
        sa.select(ModuleRelease.id).where(
            ModuleRelease.name == name, ModuleRelease.version_key == sort_key(version)
        )
    ).scalar()


def _apply_manifest(release: ModuleRelease, checked: CheckedSubmission) -> None:
    m = checked.manifest
    release.manifest = m
    release.display_name = m.get("display_name")
    release.description = m["description"]
    release.author = m["author"]
    release.category = m.get("category")
    release.tags = list(m.get("tags") or [])
    release.dependencies = _dependency_rows(release, m.get("dependencies") or [])
    if checked.inspected is not None:
        kind = checked.inspected.report.kind
        release.package_filename = f"{m['name']}-{m['version']}.{kind}"
        release.package_size = checked.package.size
        release.package_sha256 = checked.package.sha256
        release.scan_report = checked.inspected.report.as_dict()


def _dependency_rows(release: ModuleRelease, wanted: list[dict]) -> list[ModuleDependency]:
    """The release's dependency rows for a manifest: a dependency it keeps updates its own row,
    so a resubmission never inserts a second (module, name) row beside the old one before the
    old one is deleted; dropped rows go as orphans."""
    existing = {row.name: row for row in release.dependencies}
    rows = []
    for position, dep in enumerate(wanted):
        row = existing.get(dep["name"]) or ModuleDependency(name=dep["name"])
        row.position = position
        row.constraint = dep["version"]
        row.type = dep["type"]
        row.optional = dep["optional"]
        rows.append(row)
    return rows


class _StoredPackage:
    """Moves a checked package into the store; undoes it if the database says no."""

    def __init__(self, checked: CheckedSubmission):
        self.checked = checked
        self.created = False

    def __enter__(self):
        package = self.checked.package
        if package is not None:
            store = package_store()
            self.created = not store.exists(package.sha256)
            store.commit(package.path, package.sha256)
        return self

    def __exit__(self, exc_type, exc, tb):
        package = self.checked.package
        failed_here = exc_type is not None and package is not None and self.created
        if failed_here and _still_unreferenced(package.sha256):
            package_store().delete(package.sha256)
        return False


def _still_unreferenced(sha256: str) -> bool:
    """Whether no committed release names the package. When the database cannot answer
    (the failure being undone is often the database going away), the file counts as
    unreferenced: no transaction of ours could commit a row naming it meanwhile, and a
    file left behind would be an orphan. The worker's sweep catches whatever slips by."""
    try:
        db.session.rollback()
        referenced = db.session.execute(
            sa.select(ModuleRelease.id).where(ModuleRelease.package_sha256 == sha256).limit(1)
        ).first()
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        return True
    return referenced is None


def publish_release(sub: Submission, *, actor: User) -> ModuleRelease:
    """Register a new release (pending). Raises BadRequest, PermissionDenied, Conflict,
    TooLarge, UnsupportedType, ValidationFailed; nothing is stored on any of them."""
    _require_publisher(actor)
    publisher = _publisher_for(actor, sub.publisher)
    checked = read_submission(sub)
    _check_name_rules(checked.name, checked.version, publisher)  # answer early, store nothing
    conflict = f"{checked.name} {checked.version} exists already."
    with _StoredPackage(checked), unit_of_work(conflict):
        # Again, now that claims of this name take turns: two companies racing for one new
        # name (or look-alikes) both passed the check above, and no constraint stops that.
        _serialize_claims(checked.name)
        _check_name_rules(checked.name, checked.version, publisher)
        release = ModuleRelease(
            name=checked.name,
            name_fold=fold_name(checked.name),
            version=checked.version,
            version_key=sort_key(checked.version),
            prerelease=Version.parse(checked.version).is_prerelease,
            status=ReleaseStatus.PENDING,
            visibility=sub.visibility or Visibility.PUBLIC,
            publisher_id=publisher.id,
            owner_id=actor.id,
        )
        _apply_manifest(release, checked)
        db.session.add(release)
        db.session.flush()
        db.session.add(
            StatusChange(module_id=release.id, to_status=ReleaseStatus.PENDING, actor_id=actor.id)
        )
        events.record_event(
            events.MODULE_REGISTERED,
            actor=actor,
            company=publisher.slug,
            module=release,
            data={"visibility": release.visibility, "package": release.package_sha256},
        )
    return release


def _editable_release(release_id: int, actor: User) -> ModuleRelease:
    release = catalog.get_release(release_id, actor=actor)
    publisher_developer = actor.role == Role.DEVELOPER and release.publisher_id == actor.company_id
    if not (is_admin(actor) or publisher_developer):
        raise PermissionDenied("Only the publisher's developers and admins can change it.")
    return release


def _metadata_changes(changes: dict) -> dict:
    errors = []
    clean = {}
    for key, value in changes.items():
        if key not in EDITABLE_FIELDS or value is None:
            continue
        if key == "visibility" and not Visibility.has(value):
            errors.append({"pointer": "/visibility", "message": "must be public or private"})
        elif key == "tags":
            if (
                not isinstance(value, list)
                or len(value) > 10
                or not all(isinstance(t, str) and 0 < len(t) <= 32 for t in value)
            ):
                errors.append({"pointer": "/tags", "message": "at most 10 short texts"})
        elif key in TEXT_LIMITS and (
            not isinstance(value, str)
            or len(value) > TEXT_LIMITS[key]
            or (key == "description" and not value.strip())
        ):
            # Over the column's length PostgreSQL would refuse the row (a 500), SQLite not.
            limit = TEXT_LIMITS[key]
            errors.append({"pointer": f"/{key}", "message": f"must be text (1-{limit} characters)"})
        clean[key] = value
    if errors:
        raise ValidationFailed("The changes are invalid.", errors=errors)
    return clean


def _check_same_release(checked: CheckedSubmission, release: ModuleRelease) -> None:
    """A resubmission keeps the name and version; the error points at what differs."""
    errors = [
        {"pointer": f"/{key}", "message": f"must be {expected}"}
        for key, expected, same in (
            ("name", release.name, checked.name == release.name),
            ("version", release.version, sort_key(checked.version) == release.version_key),
        )
        if not same
    ]
    if errors:
        raise ValidationFailed(
            "A resubmission keeps the release's name and version.", errors=errors
        )


def update_release(
    release_id: int, changes: dict, sub: Submission | None = None, *, actor: User
) -> ModuleRelease:
    """Edit metadata; for a pending or rejected release also replace its manifest and/or
    package (same name and version). Resubmitting a rejected one makes it pending again.
    Raises NotFound, PermissionDenied, Conflict, ValidationFailed (and read_submission's)."""
    release = _editable_release(release_id, actor)
    clean = _metadata_changes(changes)
    checked = None
    if sub is not None and sub.has_content:
        _require_resubmittable(release)
        checked = read_submission(sub)
        _check_same_release(checked, release)
    changed = sorted(k for k, v in clean.items() if getattr(release, k) != v)
    guard = _StoredPackage(checked) if checked else _NoPackage()
    with guard, unit_of_work():
        for key in changed:
            setattr(release, key, clean[key])
        data: dict = {"changed": changed}
        if checked is not None:
            _apply_manifest(release, checked)
            data["changed"] = sorted({*changed, "manifest"})
            if release.status == ReleaseStatus.REJECTED:
                _set_status(release, ReleaseStatus.PENDING, actor, None)
                data["resubmitted"] = True
        release.updated_at = utcnow()
        events.record_event(
            events.MODULE_UPDATED,
            actor=actor,
            company=release.publisher.slug,
            module=release,
            data=data,
        )
    return release


class _NoPackage:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _set_status(release: ModuleRelease, status: str, actor: User, reason: str | None) -> None:
    db.session.add(
        StatusChange(
            module_id=release.id,
            from_status=release.status,
            to_status=status,
            actor_id=actor.id,
            reason=reason,
        )
    )
    release.status = status
    release.status_reason = reason


def delete_release(release_id: int, *, actor: User) -> None:
    """Soft-delete: hidden and never newly installable, kept for audit. Raises NotFound,
    PermissionDenied."""
    release = _editable_release(release_id, actor)
    with unit_of_work():
        _set_status(release, ReleaseStatus.DELETED, actor, None)
        release.deleted_at = utcnow()
        db.session.flush()
        refresh_latest(release.name)
        events.record_event(
            events.MODULE_DELETED, actor=actor, company=release.publisher.slug, module=release
        )


def package_path(release_id: int, *, actor: User):
    """(release row with package_filename and package_sha256, path) of a visible release's
    package. Raises NotFound. Two columns, not the whole release: this is the download's
    time to first byte."""
    release = db.session.execute(
        sa.select(ModuleRelease.package_filename, ModuleRelease.package_sha256).where(
            ModuleRelease.id == release_id, catalog.visibility_clause(actor)
        )
    ).first()
    if release is None:
        raise NotFound("No such module.")
    if not release.package_sha256:
        raise NotFound("This release has no package.")
    path = package_store().path_for(release.package_sha256)
    if not path.is_file():
        raise NotFound("The package file is missing.")
    return release, path


def check_submission(
    sub: Submission, *, actor: User, resubmit_of: int | None = None
) -> CheckedSubmission:
    """Everything publishing would check, storing nothing (live validation on /publish).
    Raises what publish_release raises; for a resubmission, what update_release raises."""
    _require_publisher(actor)
    if resubmit_of is not None:
        release = resubmittable_release(resubmit_of, actor=actor)
        checked = read_submission(sub)
        _check_same_release(checked, release)
        return checked
    publisher = _publisher_for(actor, sub.publisher)
    checked = read_submission(sub)
    _check_name_rules(checked.name, checked.version, publisher)
    return checked


def resubmittable_release(release_id: int, *, actor: User) -> ModuleRelease:
    """A pending or rejected release the actor may change. Raises NotFound,
    PermissionDenied, Conflict."""
    release = _editable_release(release_id, actor)
    _require_resubmittable(release)
    return release


def is_resubmittable(release: ModuleRelease) -> bool:
    """Whether a release's manifest and package may still be replaced (pages offer it)."""
    return release.status in RESUBMITTABLE


def _require_resubmittable(release: ModuleRelease) -> None:
    if not is_resubmittable(release):
        raise Conflict(f"A {release.status} release's manifest cannot change.")
