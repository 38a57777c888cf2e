"""What the approval queue shows of a release: its automated check report (manifest facts,
package scan, dependency availability) and the manifest's diff against the previous approved
release of the same name. A report takes a fixed handful of queries, however many
dependencies the release has."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import sqlalchemy as sa
import yaml

from portal.extensions import db
from portal.lib.versions import Constraint, InvalidConstraint, InvalidVersion, Version
from portal.models import Company, ModuleRelease, ReleaseStatus, User
from portal.services.accounts.access import may_review
from portal.services.catalog import queries as catalog
from portal.services.errors import PermissionDenied

CONTEXT_LINES = 3


@dataclass(frozen=True)
class Candidate:
    """A release that could satisfy a dependency (columns only, no relationships)."""

    id: int
    name: str
    version: str
    status: str


@dataclass
class DependencyCheck:
    """One manifest dependency and what the registry holds for it."""

    name: str
    constraint: str
    type: str
    optional: bool
    match: Candidate | None = None  # the highest approved release that satisfies it
    approved_versions: list[str] = field(default_factory=list)  # newest first
    pending_versions: list[str] = field(default_factory=list)  # satisfying, awaiting review
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.type == "service" or self.match is not None


@dataclass(frozen=True)
class DiffLine:
    """One line of a unified diff: `kind` is added, removed, context or hunk."""

    kind: str
    text: str
    old_no: int | None = None
    new_no: int | None = None

    @property
    def sign(self) -> str:
        return {"added": "+", "removed": "-", "context": " "}.get(self.kind, "")


@dataclass
class ManifestDiff:
    previous: Candidate | None  # None: the name's first release (nothing approved before)
    lines: list[DiffLine]

    @property
    def added(self) -> int:
        return sum(line.kind == "added" for line in self.lines)

    @property
    def removed(self) -> int:
        return sum(line.kind == "removed" for line in self.lines)


@dataclass
class ReleaseReport:
    release: ModuleRelease
    facts: list[tuple[str, str]]
    scan: dict | None  # ScanReport.as_dict(); None for a manifest-only release
    dependencies: list[DependencyCheck]
    diff: ManifestDiff

    @property
    def warnings(self) -> list[str]:
        """Everything a reviewer should look at twice, for the report's summary."""
        found = list((self.scan or {}).get("warnings", []))
        found += [f"{dep.name}: {dep.problem}" for dep in self.dependencies if dep.problem]
        return found


def _require_admin(actor: User) -> None:
    if not may_review(actor):
        raise PermissionDenied("Only platform admins work the approval queue.")


def queue_publishers(*, actor: User, selected: str | None = None) -> list[Company]:
    """Companies with releases waiting for review (plus `selected`), by name, for the
    queue's publisher filter. Raises PermissionDenied."""
    _require_admin(actor)
    waiting = sa.select(ModuleRelease.publisher_id).where(
        ModuleRelease.status == ReleaseStatus.PENDING
    )
    condition = Company.id.in_(waiting)
    if selected:
        condition = sa.or_(condition, Company.slug == selected)
    return list(
        db.session.execute(sa.select(Company).where(condition).order_by(Company.name)).scalars()
    )


def release_report(release_id: int, *, actor: User) -> ReleaseReport:
    """The check report of one release, for platform admins. Raises PermissionDenied,
    NotFound."""
    _require_admin(actor)
    release = catalog.get_release(release_id, actor=actor)
    return ReleaseReport(
        release=release,
        facts=manifest_facts(release),
        scan=release.scan_report,
        dependencies=check_dependencies(release),
        diff=diff_with_previous(release),
    )


def manifest_facts(release: ModuleRelease) -> list[tuple[str, str]]:
    """The manifest's key facts as (label, text) pairs, in reading order."""
    m = release.manifest or {}
    facts = [
        ("Name", m.get("name", release.name)),
        ("Version", m.get("version", release.version)),
        ("Display name", m.get("display_name")),
        ("Description", m.get("description")),
        ("Author", m.get("author")),
        ("License", m.get("license")),
        ("Homepage", m.get("homepage")),
        ("Category", m.get("category")),
        ("Tags", ", ".join(m.get("tags") or []) or None),
        ("Visibility", release.visibility),
        ("Entry points", ", ".join(f"{k} → {v}" for k, v in (m.get("entry_points") or {}).items())),
        ("Endpoints", ", ".join(f"{e['method']} {e['path']}" for e in m.get("endpoints") or [])),
        ("Configuration", _config_fields(m.get("config_schema"))),
        ("Health check", _health_check(m.get("health_check"))),
    ]
    return [(label, str(value)) for label, value in facts if value]


def _config_fields(schema: dict | None) -> str | None:
    if not schema:
        return None
    required = set(schema.get("required") or [])
    fields = [
        f"{name}{' (required)' if name in required else ''}"
        for name in schema.get("properties") or {}
    ]
    return ", ".join(fields) or "no fields"


def _health_check(check: dict | None) -> str | None:
    if not check:
        return None
    text = check.get("path", "/health")
    if check.get("interval_seconds"):
        text += f" every {check['interval_seconds']} s"
    return text


def check_dependencies(release: ModuleRelease) -> list[DependencyCheck]:
    """Each dependency with the highest approved release that satisfies it (public ones,
    or private ones of the same publisher), or the problem; service dependencies as
    recorded. One query for all module dependencies together."""
    deps = list(release.dependencies)
    names = {d.name for d in deps if d.type == "module"}
    by_name: dict[str, list[Candidate]] = {name: [] for name in names}
    if names:
        rows = db.session.execute(
            sa.select(
                ModuleRelease.id, ModuleRelease.name, ModuleRelease.version, ModuleRelease.status
            ).where(
                ModuleRelease.name.in_(names),
                # What the publisher itself could install, pending releases counted as
                # coming (a private dependency of its own is fine; another's is not).
                catalog.installable_clause(
                    release.publisher_id, statuses=(ReleaseStatus.APPROVED, ReleaseStatus.PENDING)
                ),
                ModuleRelease.id != release.id,
            )
        )
        for row in rows:
            by_name[row.name].append(Candidate(row.id, row.name, row.version, row.status))
    return [_check_one(dep, by_name.get(dep.name, [])) for dep in deps]


def _check_one(dep, candidates: list[Candidate]) -> DependencyCheck:
    check = DependencyCheck(dep.name, dep.constraint or "*", dep.type, dep.optional)
    if dep.type != "module":
        return check
    try:
        constraint = Constraint.parse(check.constraint)
        approved = {
            Version.parse(c.version): c for c in candidates if c.status == ReleaseStatus.APPROVED
        }
        pending = [
            Version.parse(c.version) for c in candidates if c.status == ReleaseStatus.PENDING
        ]
    except (InvalidConstraint, InvalidVersion) as exc:
        check.problem = str(exc)
        return check
    check.approved_versions = [str(v) for v in sorted(approved, reverse=True)]
    best = constraint.best(approved)
    if best is not None:
        check.match = approved[best]
        return check
    check.pending_versions = [str(v) for v in constraint.filter(pending)]
    if not approved:
        check.problem = f"no approved release of {dep.name} exists"
    else:
        check.problem = f"no approved release of {dep.name} satisfies {check.constraint}"
    if check.optional:
        check.problem += " (optional dependency)"
    return check


def _previous_approved(release: ModuleRelease) -> tuple[Candidate | None, dict | None]:
    """The newest approved release of the name below this version, and its manifest."""
    row = db.session.execute(
        sa.select(
            ModuleRelease.id,
            ModuleRelease.name,
            ModuleRelease.version,
            ModuleRelease.status,
            ModuleRelease.manifest,
        )
        .where(
            ModuleRelease.name == release.name,
            ModuleRelease.status == ReleaseStatus.APPROVED,
            ModuleRelease.version_key < release.version_key,
        )
        .order_by(ModuleRelease.version_key.desc())
        .limit(1)
    ).first()
    if row is None:
        return None, None
    return Candidate(row.id, row.name, row.version, row.status), row.manifest


def diff_with_previous(release: ModuleRelease) -> ManifestDiff:
    """The manifest against the newest approved release of the same name with a lower
    version (none: the name's first release, and no lines)."""
    previous, manifest = _previous_approved(release)
    if previous is None:
        return ManifestDiff(previous=None, lines=[])
    return ManifestDiff(previous, manifest_diff(manifest, release.manifest))


def _dump(manifest: dict | None) -> list[str]:
    if not manifest:
        return []
    text = yaml.safe_dump(manifest, sort_keys=True, allow_unicode=True, default_flow_style=False)
    return text.splitlines()


def manifest_diff(old: dict | None, new: dict | None) -> list[DiffLine]:
    """A unified diff of two manifests' YAML dumps (keys sorted), each line tagged and
    numbered, with CONTEXT_LINES of context around each change."""
    a, b = _dump(old), _dump(new)
    lines: list[DiffLine] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for group in matcher.get_grouped_opcodes(CONTEXT_LINES):
        first, last = group[0], group[-1]
        old_len, new_len = last[2] - first[1], last[4] - first[3]
        header = f"@@ -{first[1] + 1},{old_len} +{first[3] + 1},{new_len} @@"
        lines.append(DiffLine("hunk", header))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for offset, text in enumerate(a[i1:i2]):
                    lines.append(DiffLine("context", text, i1 + offset + 1, j1 + offset + 1))
                continue
            if tag in ("replace", "delete"):
                for offset, text in enumerate(a[i1:i2]):
                    lines.append(DiffLine("removed", text, old_no=i1 + offset + 1))
            if tag in ("replace", "insert"):
                for offset, text in enumerate(b[j1:j2]):
                    lines.append(DiffLine("added", text, new_no=j1 + offset + 1))
    return lines
