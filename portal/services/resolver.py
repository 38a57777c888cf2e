"""Install plans: resolve a module and constraint, with its `type: module` dependencies,
against the releases a company may install and what it already has.

resolvelib (pip's backtracking resolver) does the search; this module supplies releases
(loaded a dependency level at a time, a few queries per plan whatever the number of
candidates), prefers what is installed, then the highest version, and turns a failure
into sentences a person can act on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import sqlalchemy as sa
from resolvelib import AbstractProvider, BaseReporter, Resolver
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep

from portal.extensions import db
from portal.models import Company, Installation, ModuleRelease
from portal.versions import Constraint, Version

MAX_ROUNDS = 2000


@lru_cache(maxsize=4096)
def _constraint(text: str) -> Constraint:
    return Constraint.parse(text)


@lru_cache(maxsize=65536)
def _version(text: str) -> Version:
    return Version.parse(text)


@dataclass(frozen=True)
class Candidate:
    id: int
    name: str
    version: Version
    deprecated: bool
    deps: tuple[tuple[str, str], ...]  # (name, constraint) of required module dependencies

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class Requirement:
    name: str
    constraint: Constraint
    required_by: str  # "the request", "purchasing 1.2.0", "reporting 3.1.0 (installed)"

    def allows(self, candidate: Candidate, installed_id: int | None) -> bool:
        if not self.constraint.allows(candidate.version):
            return False
        # Deprecated releases are offered only when pinned exactly (or already installed).
        return (
            not candidate.deprecated
            or candidate.id == installed_id
            or self.constraint.exact == candidate.version
        )


@dataclass
class PlanStep:
    module: str
    version: str
    module_id: int
    action: str  # install | upgrade | keep
    installed_version: str | None = None


@dataclass
class Plan:
    steps: list[PlanStep]
    requested: str

    @property
    def changes(self) -> list[PlanStep]:
        return [s for s in self.steps if s.action != "keep"]

    @property
    def extra_changes(self) -> list[PlanStep]:
        """What the plan changes besides the requested module (dependencies)."""
        return [s for s in self.changes if s.module != self.requested]


@dataclass
class NoPlan(Exception):
    """Resolution failed; `reasons` are sentences naming the chain of requirements."""

    reasons: list[str]
    involves_installed: bool = False
    missing: list[str] = field(default_factory=list)


def _module_deps(manifest: dict) -> tuple[tuple[str, str], ...]:
    deps = manifest.get("dependencies") or []
    return tuple(
        (d["name"], d.get("version") or "*")
        for d in deps
        if isinstance(d, dict) and d.get("type", "module") == "module" and not d.get("optional")
    )


class ReleaseIndex:
    """Releases a company may install, loaded by dependency level in one query per level."""

    def __init__(self, company: Company, installed: dict[str, Installation]):
        self.company = company
        self.installed = installed
        self.by_name: dict[str, list[Candidate]] = {}
        self.queries = 0

    def load(self, names: Iterable[str]) -> None:
        missing = sorted({n for n in names if n not in self.by_name})
        if not missing:
            return
        installed_ids = [i.module_id for n, i in self.installed.items() if n in missing]
        visible = sa.and_(
            ModuleRelease.status.in_(("approved", "deprecated")),
            sa.or_(
                ModuleRelease.visibility == "public",
                ModuleRelease.publisher_id == self.company.id,
            ),
        )
        rows = db.session.execute(
            sa.select(
                ModuleRelease.id,
                ModuleRelease.name,
                ModuleRelease.version,
                ModuleRelease.status,
                ModuleRelease.manifest,
            ).where(
                ModuleRelease.name.in_(missing),
                sa.or_(visible, ModuleRelease.id.in_(installed_ids or [-1])),
            )
        ).all()
        self.queries += 1
        for name in missing:
            self.by_name[name] = []
        for row in rows:
            self.by_name[row.name].append(
                Candidate(
                    id=row.id,
                    name=row.name,
                    version=_version(row.version),
                    deprecated=row.status != "approved",
                    deps=_module_deps(row.manifest or {}),
                )
            )
        for candidates in self.by_name.values():
            candidates.sort(key=lambda c: c.version, reverse=True)

    def candidates(self, name: str) -> list[Candidate]:
        self.load([name])
        found = self.by_name[name]
        # Prefetch the next level: every dependency name of these candidates, at once.
        self.load({dep for c in found for dep, _ in c.deps})
        return found

    def versions(self, name: str) -> list[str]:
        return [str(c.version) for c in self.by_name.get(name, []) if not c.deprecated]


class _Provider(AbstractProvider):
    def __init__(self, index: ReleaseIndex):
        self.index = index

    def identify(self, requirement_or_candidate) -> str:
        return requirement_or_candidate.name

    def get_preference(self, identifier, resolutions, candidates, information, backtrack_causes):
        # Decide the most constrained names first; it prunes the search soonest.
        return sum(1 for _ in candidates[identifier])

    def _installed_id(self, name: str) -> int | None:
        inst = self.index.installed.get(name)
        return inst.module_id if inst else None

    def find_matches(self, identifier, requirements, incompatibilities):
        installed_id = self._installed_id(identifier)
        bad = {c.id for c in incompatibilities[identifier]}
        reqs = list(requirements[identifier])
        matches = [
            c
            for c in self.index.candidates(identifier)
            if c.id not in bad and all(r.allows(c, installed_id) for r in reqs)
        ]
        # What is installed is kept when it fits; otherwise the highest version wins.
        return sorted(matches, key=lambda c: c.id != installed_id)

    def is_satisfied_by(self, requirement, candidate) -> bool:
        return requirement.allows(candidate, self._installed_id(candidate.name))

    def get_dependencies(self, candidate):
        return [
            Requirement(name, _constraint(text), str(candidate)) for name, text in candidate.deps
        ]


def installed_modules(company: Company) -> dict[str, Installation]:
    rows = db.session.execute(
        sa.select(Installation).where(
            Installation.company_id == company.id, Installation.status == "installed"
        )
    ).scalars()
    return {i.module_name: i for i in rows}


def resolve(
    company: Company,
    name: str,
    constraint: str = "*",
    *,
    installed: dict[str, Installation] | None = None,
) -> Plan:
    """A plan installing (or moving) `name` to the highest release allowed by `constraint`,
    with its dependencies; installed modules are kept unless a requirement moves them.
    Raises NoPlan with the reasons."""
    installed = installed_modules(company) if installed is None else installed
    index = ReleaseIndex(company, installed)
    roots = [Requirement(name, _constraint(constraint), "the request")]
    index.load(installed)
    # Every other installed module keeps its release, so its dependencies' constraints bind.
    for inst_name, inst in installed.items():
        current = next((c for c in index.by_name[inst_name] if c.id == inst.module_id), None)
        if current is None or inst_name == name:
            continue
        for dep, text in current.deps:
            roots.append(Requirement(dep, _constraint(text), f"{current} (installed)"))
    try:
        result = Resolver(_Provider(index), BaseReporter()).resolve(roots, max_rounds=MAX_ROUNDS)
    except ResolutionImpossible as exc:
        raise _explain(exc, index, company) from None
    except ResolutionTooDeep:
        raise NoPlan([f"No plan found for {name} {constraint}: the search was too long."]) from None
    return _plan(result, name, installed)


def _plan(result, requested: str, installed: dict) -> Plan:
    mapping = result.mapping
    # Keep what the request reaches, plus anything that changes.
    reach, stack = set(), [requested]
    while stack:
        node = stack.pop()
        if node in reach or node not in mapping:
            continue
        reach.add(node)
        stack.extend(dep for dep, _ in mapping[node].deps)
    steps = {}
    for name, cand in mapping.items():
        inst = installed.get(name)
        if inst is None:
            action = "install"
        elif inst.module_id == cand.id:
            action = "keep"
        else:
            action = "upgrade"
        if name in reach or action != "keep":
            steps[name] = PlanStep(
                module=name,
                version=str(cand.version),
                module_id=cand.id,
                action=action,
                installed_version=inst.release.version if inst is not None else None,
            )
    order = _dependency_order({n: [d for d, _ in mapping[n].deps if d in steps] for n in steps})
    return Plan(steps=[steps[n] for n in order], requested=requested)


def _dependency_order(graph: dict[str, list[str]]) -> list[str]:
    """Dependencies before dependents; a cycle's members stay together (Tarjan's SCCs come
    out in reverse topological order, which is exactly dependencies first)."""
    index, low, on_stack, stack, order = {}, {}, set(), [], []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for dep in graph.get(node, []):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            order.extend(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return order


def _explain(exc: ResolutionImpossible, index: ReleaseIndex, company: Company) -> NoPlan:
    by_name: dict[str, list[tuple[str, str]]] = {}
    for info in exc.causes:
        who = str(info.parent) if info.parent is not None else info.requirement.required_by
        by_name.setdefault(info.requirement.name, []).append(
            (who, str(info.requirement.constraint))
        )
    reasons, missing, involves_installed = [], [], False
    for name, needs in by_name.items():
        needs = list(dict.fromkeys(needs))
        inst = index.installed.get(name)
        available = index.versions(name)
        installed_needs = [(w, c) for w, c in needs if w.endswith("(installed)")]
        other_needs = [(w, c) for w, c in needs if not w.endswith("(installed)")]
        if inst is not None and installed_needs and other_needs:
            involves_installed = True
            for who, text in other_needs:
                holders = ", ".join(
                    f"{w.removesuffix(' (installed)')} needs as {c}" for w, c in installed_needs
                )
                reasons.append(
                    f"{who} needs {name} {text}, but {company.slug} has {name} "
                    f"{inst.release.version}, which {holders}."
                )
            continue
        if not available and inst is None:
            missing.append(name)
            wanted = "; ".join(f"{w} needs {name} {c}" for w, c in needs)
            reasons.append(f"{wanted}, but no release of {name} is available to {company.slug}.")
            continue
        wanted = " and ".join(f"{w} needs {name} {c}" for w, c in needs)
        involves_installed = involves_installed or bool(installed_needs)
        shown = ", ".join(available[:10]) or "none"
        reasons.append(f"{wanted}; no release satisfies all of that (available: {shown}).")
    return NoPlan(reasons=reasons, involves_installed=involves_installed, missing=missing)
