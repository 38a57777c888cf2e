"""Where an installed module can move: the newest release it could be upgraded to with
nothing else changing ("upgrade available", on the control room and in the API), and the
releases a version change may choose among. Reads only."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

from portal.lib.versions import Constraint, InvalidConstraint
from portal.models import Company, Installation, InstallationStatus
from portal.services.installations.resolver import (
    Candidate,
    NoPlan,
    ReleaseIndex,
    installed_modules,
    resolve,
)

# The newest few candidates per module, and a bounded number of resolver runs per call.
MAX_UPGRADE_TRIES = 3
MAX_UPGRADE_RESOLVES = 5


def upgrades_available(installations: list[Installation]) -> dict[int, str]:
    """Installation id → the highest approved version above the installed one that its
    company can move to with nothing else changing (what update_installation accepts), for
    installations the caller has already read through get_installation or
    list_installations (the actor's own, any for admins). Raises nothing."""
    result: dict[int, str] = {}
    active = [i for i in installations if i.status == InstallationStatus.INSTALLED]
    active.sort(key=_company_of)
    for _company, group in groupby(active, key=_company_of):
        shown = list(group)
        result.update(_company_upgrades(shown[0].company, shown))
    return result


def upgrade_available(inst: Installation) -> str | None:
    """upgrades_available of one installation: the version, or None."""
    return upgrades_available([inst]).get(inst.id)


def _company_of(inst: Installation) -> int:
    return inst.company_id


def _company_upgrades(company: Company, shown: list[Installation]) -> dict[int, str]:
    """Cost, whatever the number of rows: one query for the installed modules and one for
    every release of their names (the resolver's ReleaseIndex, deps included). Per module,
    the newest MAX_UPGRADE_TRIES candidates are screened in memory against every
    dependent's constraint and the candidate's own dependencies (each installed, at a
    version it accepts); the first that passes is confirmed with `resolve(company, name,
    "=v")`, at most MAX_UPGRADE_RESOLVES runs per company (a few queries each). Past that
    budget the screen's answer stands: it checks the same constraints the resolver would."""
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
        if now is None:
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


def version_choices(inst: Installation) -> list[VersionChoice]:
    """Every release of the installed module its company may install (deprecated ones only
    by exact version, which is how a change asks), newest first, the installed one marked;
    for an installation the caller has read through get_installation. One query."""
    index = ReleaseIndex(inst.company, {inst.module_name: inst})
    index.load([inst.module_name])
    return [
        VersionChoice(str(c.version), c.id == inst.module_id, c.deprecated)
        for c in index.by_name.get(inst.module_name, [])
    ]
