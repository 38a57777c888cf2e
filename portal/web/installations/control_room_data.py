"""What the control room shows beyond the services' answers, computed for presentation
only (reads, never writes): which newer release each installed module could move to
("upgrade available"), the versions a module may be moved to, the configuration diff between
consecutive revisions (a secret shows as "changed", never with a value). The health badges
the page polls are services.health.health_badges."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from portal.lib.config_schema import secret_fields
from portal.lib.json_errors import join_pointer
from portal.lib.versions import Constraint, InvalidConstraint
from portal.models import Company, Installation, InstallationRevision
from portal.services.installations.installs import config_schema_of
from portal.services.installations.lifecycle import masked_revision_config
from portal.services.installations.resolver import (
    Candidate,
    NoPlan,
    ReleaseIndex,
    installed_modules,
    resolve,
)

# "Upgrade available": the newest few candidates per module, and a bounded number of
# resolver runs per page (see upgrades_available).
MAX_UPGRADE_TRIES = 3
MAX_UPGRADE_RESOLVES = 5
MAX_SHOWN = 200  # characters of one configuration value in a diff


# --- Upgrade available ---------------------------------------------------------------------


def upgrades_available(company: Company, shown: list[Installation]) -> dict[int, str]:
    """Installation id → the highest approved version above the installed one that the
    company can move to with nothing else changing (what update_installation accepts).

    Cost, whatever the number of rows: one query for the installed modules and one for every
    release of their names (the resolver's ReleaseIndex, deps included). Per module, the
    newest MAX_UPGRADE_TRIES candidates are screened in memory against every dependent's
    constraint and the candidate's own dependencies (each installed, at a version it
    accepts); the first that passes is confirmed with `resolve(company, name, "=v")`,
    at most MAX_UPGRADE_RESOLVES runs per page (a few queries each). Past that budget the
    screen's answer stands: it checks the same constraints the resolver would."""
    if not shown:
        return {}
    installed = installed_modules(company)
    index = ReleaseIndex(company, installed)
    index.load(installed)
    current = {name: _current(index, inst) for name, inst in installed.items()}
    needs: dict[str, list[str]] = {}  # module → constraints its dependents put on it
    for name, cand in current.items():
        for dep, text in cand.deps if cand else ():
            if dep != name:
                needs.setdefault(dep, []).append(text)
    budget, result = MAX_UPGRADE_RESOLVES, {}
    for inst in shown:
        now = current.get(inst.module_name)
        if inst.status != "installed" or now is None:
            continue
        for cand in _newer(index.by_name.get(inst.module_name, []), now)[:MAX_UPGRADE_TRIES]:
            if not _fits(cand, needs.get(inst.module_name, []), current):
                continue
            if budget > 0:
                budget -= 1
                if not _resolves(company, cand, installed):
                    continue
            result[inst.id] = str(cand.version)
            break
    return result


def _current(index: ReleaseIndex, inst: Installation) -> Candidate | None:
    return next(
        (c for c in index.by_name.get(inst.module_name, []) if c.id == inst.module_id), None
    )


def _newer(candidates: list[Candidate], now: Candidate) -> list[Candidate]:
    """Approved releases above the installed one, newest first; pre-releases only for a
    module that runs a pre-release already."""
    return [
        c
        for c in candidates
        if c.version > now.version
        and not c.deprecated
        and (not c.version.is_prerelease or now.version.is_prerelease)
    ]


def _allows(text: str, version) -> bool:
    try:
        return Constraint.parse(text).allows(version)
    except InvalidConstraint:
        return False


def _fits(cand: Candidate, constraints: list[str], current: dict) -> bool:
    if not all(_allows(text, cand.version) for text in constraints):
        return False
    for dep, text in cand.deps:
        have = current.get(dep)
        if dep != cand.name and (have is None or not _allows(text, have.version)):
            return False
    return True


def _resolves(company: Company, cand: Candidate, installed: dict) -> bool:
    try:
        plan = resolve(company, cand.name, f"={cand.version}", installed=installed)
    except NoPlan:
        return False
    return not plan.extra_changes


@dataclass(frozen=True)
class VersionChoice:
    version: str
    installed: bool
    deprecated: bool


def version_choices(company: Company, inst: Installation) -> list[VersionChoice]:
    """Every release of the module the company may install (deprecated ones only by exact
    version, which is how a change asks), newest first, the installed one marked. One query."""
    index = ReleaseIndex(company, {inst.module_name: inst})
    index.load([inst.module_name])
    return [
        VersionChoice(str(c.version), c.id == inst.module_id, c.deprecated)
        for c in index.by_name.get(inst.module_name, [])
    ]


# --- Revision history and diffs ------------------------------------------------------------


@dataclass
class Change:
    what: str  # "version", "endpoint URL", or a JSON Pointer into the configuration
    kind: str  # added | removed | changed
    before: str | None = None  # text shown; never a secret
    after: str | None = None
    secret: bool = False
    config: bool = True


@dataclass
class HistoryEntry:
    rev: InstallationRevision
    changes: list[Change] = field(default_factory=list)
    first: bool = False


def history(revisions: list[InstallationRevision]) -> list[HistoryEntry]:
    """Newest first, each with its changes against the revision before it (the first one:
    what it was installed with)."""
    entries, previous = [], None
    for rev in sorted(revisions, key=lambda r: r.revision):
        entries.append(HistoryEntry(rev, diff_revisions(previous, rev), previous is None))
        previous = rev
    return entries[::-1]


def diff_revisions(
    before: InstallationRevision | None, after: InstallationRevision
) -> list[Change]:
    """Version, endpoint and configuration changes from `before` (None: nothing) to `after`.
    Values come from the masked configurations; a secret is compared on the stored values
    but shown only as added, removed or changed."""
    changes: list[Change] = []
    if before is not None and before.version != after.version:
        changes.append(Change("version", "changed", before.version, after.version, config=False))
    old_url = before.endpoint_url if before is not None else None
    if old_url != after.endpoint_url:
        kind = (
            "changed"
            if old_url and after.endpoint_url
            else "added"
            if old_url is None
            else "removed"
        )
        changes.append(Change("endpoint URL", kind, old_url, after.endpoint_url, config=False))
    secrets = _secrets(after) | (_secrets(before) if before is not None else set())
    old = _leaves(masked_revision_config(before)) if before is not None else {}
    new = _leaves(masked_revision_config(after))
    for pointer in sorted(set(old) | set(new)):
        if any(pointer == s or pointer.startswith(s + "/") for s in secrets):
            continue
        if pointer not in old:
            changes.append(Change(pointer, "added", None, _text(new[pointer])))
        elif pointer not in new:
            changes.append(Change(pointer, "removed", _text(old[pointer]), None))
        elif old[pointer] != new[pointer] or type(old[pointer]) is not type(new[pointer]):
            changes.append(Change(pointer, "changed", _text(old[pointer]), _text(new[pointer])))
    for pointer in sorted(secrets):
        had, was = _at(before.config if before is not None else {}, pointer)
        has, now = _at(after.config, pointer)
        if had != has:
            changes.append(Change(pointer, "added" if has else "removed", secret=True))
        elif has and was != now:
            changes.append(Change(pointer, "changed", secret=True))
    return changes


def _secrets(rev: InstallationRevision) -> set[str]:
    return secret_fields(config_schema_of(rev.release))


def _leaves(config: Any, pointer: str = "") -> dict[str, Any]:
    """JSON Pointer → value of every leaf (a scalar, a list or an empty object)."""
    if not isinstance(config, dict) or (not config and pointer):
        return {pointer: config}
    result: dict[str, Any] = {}
    for key, value in config.items():
        result.update(_leaves(value, join_pointer(pointer, key)))
    return result


def _at(config: Any, pointer: str) -> tuple[bool, Any]:
    node = config
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or token not in node:
            return False, None
        node = node[token]
    return True, node


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"
