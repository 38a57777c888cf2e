"""Install plans: resolve a module and constraint, with its `type: module` dependencies,
against the releases a company may install and what it already has.

resolvelib (pip's backtracking resolver) does the search; this module supplies releases
(the request's whole dependency closure loaded up front, one query per dependency level,
whatever the number of candidates), prefers what is installed, then the highest version,
and turns a failure into sentences a person can act on.

Three things keep the search short (bench/resolver.py measures it):
- resolvelib decides between *choices*, not single releases: the releases of a name that
  have the same dependencies form one choice (typically the patch and minor releases of a
  major), and the highest release of it that every requirement allows is the one
  installed. Trying those releases one by one could only fail or succeed alike;
- before the search, releases no plan can use are set aside (ReleaseIndex.prune): those a
  root requirement excludes, and those with a dependency nothing satisfies, transitively.
  The reason is kept, so a failure still names the whole chain;
- after a conflict, the names involved in it are decided first (as pip does), and the
  answers to "does this constraint allow that version" are remembered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import sqlalchemy as sa
from resolvelib import AbstractProvider, BaseReporter, Resolver
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep
from sqlalchemy.orm import joinedload

from portal.extensions import db
from portal.lib.versions import Constraint, Version
from portal.models import Company, Installation, InstallationStatus, ModuleRelease, ReleaseStatus
from portal.services.catalog.queries import is_installable

MAX_ROUNDS = 2000


@lru_cache(maxsize=4096)
def _constraint(text: str) -> Constraint:
    return Constraint.parse(text)


@lru_cache(maxsize=65536)
def _version(text: str) -> Version:
    return Version.parse(text)


@lru_cache(maxsize=1 << 17)
def _satisfies(constraint: Constraint, version: Version) -> bool:
    """Constraint.allows, remembered: the same pairs come back plan after plan."""
    return constraint.allows(version)


@dataclass(frozen=True)
class Candidate:
    id: int
    name: str
    version: Version
    deprecated: bool
    deps: tuple[tuple[str, str], ...]  # (name, constraint) of required module dependencies

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True, eq=False)
class Choice:
    """Releases of one name with the same dependencies, highest first, narrowed to those
    every current requirement allows; `best` is the one a plan installs."""

    name: str
    deps: tuple[tuple[str, str], ...]
    releases: tuple[Candidate, ...]
    best: Candidate
    # constraint text -> whether every release left satisfies it (asked again every round)
    satisfies: dict[str, bool] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        if len(self.releases) == 1:
            return str(self.best)
        if len(self.releases) == 2:
            other = self.releases[1] if self.releases[0] is self.best else self.releases[0]
            return f"{self.best} (or {other.version})"
        more = len(self.releases) - 1
        return f"{self.best} (or {more} other releases with the same dependencies)"


@dataclass(frozen=True)
class Requirement:
    name: str
    constraint: Constraint
    required_by: str  # "the request", "purchasing 1.2.0", "reporting 3.1.0 (installed)"

    def allows(self, candidate: Candidate, installed_id: int | None) -> bool:
        if not _satisfies(self.constraint, candidate.version):
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


def required_module_dependencies(manifest: dict | None) -> tuple[tuple[str, str], ...]:
    """(name, constraint) of each dependency a release cannot run without: `type: module`
    (the default) and not `optional`. Service dependencies and optional modules are
    recorded and shown, never required of a plan, an upgrade or an uninstall."""
    deps = (manifest or {}).get("dependencies") or []
    return tuple(
        (d["name"], d.get("version") or "*")
        for d in deps
        if isinstance(d, dict) and d.get("type", "module") == "module" and not d.get("optional")
    )


@lru_cache(maxsize=16384)
def _deps_from_json(text: str | None) -> tuple[tuple[str, str], ...]:
    """required_module_dependencies of a manifest's `dependencies` as JSON text (releases of
    one module mostly share it, so it is parsed once)."""
    deps = json.loads(text) if text else None
    return required_module_dependencies({"dependencies": deps if isinstance(deps, list) else None})


class ReleaseIndex:
    """Releases a company may install, loaded by dependency level in one query per level."""

    def __init__(self, company: Company, installed: dict[str, Installation]):
        self.company = company
        self.installed = installed
        self.by_name: dict[str, list[Candidate]] = {}
        self.queries = 0
        # After prune(): the releases a plan can use, and why the others cannot:
        # (name, dependencies) -> the (dependency, constraint) nothing satisfies.
        self.viable: dict[str, list[Candidate]] = {}
        self.dead: dict[tuple[str, tuple], tuple[str, str]] = {}

    def load(self, names: Iterable[str]) -> None:
        missing = sorted({n for n in names if n not in self.by_name})
        if not missing:
            return
        installed_ids = {i.module_id for n, i in self.installed.items() if n in missing}
        rows = db.session.execute(
            sa.select(
                ModuleRelease.id,
                ModuleRelease.name,
                ModuleRelease.version,
                ModuleRelease.version_key,
                ModuleRelease.status,
                ModuleRelease.visibility,
                ModuleRelease.publisher_id,
                # Only the dependencies, not the whole manifest (a config_schema can be large),
                # as text: parsed once per distinct list.
                sa.cast(ModuleRelease.manifest["dependencies"], sa.Text).label("dependencies"),
            )
            # Only the name in SQL, so both databases search the name index (with the
            # visibility rules in the WHERE clause, SQLite scanned the status index instead).
            .where(ModuleRelease.name.in_(missing))
        ).all()
        company_id = self.company.id
        rows = [r for r in rows if r.id in installed_ids or is_installable(r, company_id)]
        self.queries += 1
        for name in missing:
            self.by_name[name] = []
        # version_key orders by SemVer precedence, byte by byte: highest first.
        for row in sorted(rows, key=lambda r: r.version_key, reverse=True):
            self.by_name[row.name].append(
                Candidate(
                    id=row.id,
                    name=row.name,
                    version=_version(row.version),
                    deprecated=row.status != ReleaseStatus.APPROVED,
                    deps=_deps_from_json(row.dependencies),
                )
            )

    def load_closure(self, names: Iterable[str]) -> None:
        """Load `names` and everything any of their releases may depend on, transitively:
        one query per dependency level, so the statements of a plan depend on how deep the
        dependencies go, never on how many releases each name has."""
        level = set(names)
        while level:
            self.load(level)
            level = {
                dep
                for name in level
                for c in self.by_name[name]
                for dep, _ in c.deps
                if dep not in self.by_name
            }

    def candidates(self, name: str) -> list[Candidate]:
        if name not in self.by_name:  # resolve() has loaded the closure already
            self.load_closure([name])
        viable = self.viable.get(name)
        return self.by_name[name] if viable is None else viable

    def prune(self, roots: list[Requirement], allows) -> None:
        """Set aside the releases no plan can use, before the search starts: those a root
        requirement (the request, an installed module's dependency) excludes, and, until
        nothing changes, those with a dependency that no remaining release satisfies. Every
        release of a plan has its dependencies in the plan, so this loses no plan, and the
        search no longer walks into dead ends one release at a time (`dead` keeps why)."""
        viable = {name: list(found) for name, found in self.by_name.items()}
        for req in roots:
            if req.name in viable:
                viable[req.name] = [c for c in viable[req.name] if allows(req, c)]
        dependents: dict[str, set[str]] = {}
        for name, found in viable.items():
            for c in found:
                for dep, _ in c.deps:
                    dependents.setdefault(dep, set()).add(name)
        dirty = set(viable)
        while dirty:
            changed, matched = set(), {}
            for name in sorted(dirty):
                keep = []
                for c in viable[name]:
                    for dep, text in c.deps:
                        if (dep, text) not in matched:
                            req = Requirement(dep, _constraint(text), "")
                            matched[dep, text] = any(allows(req, d) for d in viable.get(dep, ()))
                        if not matched[dep, text]:
                            self.dead[name, c.deps] = (dep, text)
                            break
                    else:
                        keep.append(c)
                if len(keep) != len(viable[name]):
                    viable[name] = keep
                    changed.add(name)
            dirty = {d for name in changed for d in dependents.get(name, ())}
        self.viable = viable

    def versions(self, name: str) -> list[str]:
        return [str(c.version) for c in self.by_name.get(name, []) if not c.deprecated]


class _Provider(AbstractProvider):
    def __init__(self, index: ReleaseIndex):
        self.index = index
        # (constraint text, candidate id) -> allowed. resolvelib asks the same questions
        # over and over while it backtracks; SemVer comparisons in Python are what cost.
        self._allowed: dict[tuple[str, int], bool] = {}
        self._matches: dict[tuple, list[Choice]] = {}

    def identify(self, requirement_or_candidate) -> str:
        return requirement_or_candidate.name

    def narrow_requirement_selection(
        self, identifiers, resolutions, candidates, information, backtrack_causes
    ):
        # As pip does: after a conflict, work on the names involved in it first. The search
        # then finds the way out, or proves there is none, in far fewer rounds.
        causes = set()
        for info in backtrack_causes:
            causes.add(info.requirement.name)
            if info.parent is not None:
                causes.add(info.parent.name)
        return [i for i in identifiers if i in causes] or identifiers

    def get_preference(self, identifier, resolutions, candidates, information, backtrack_causes):
        # Decide the most constrained names first; it prunes the search soonest.
        return sum(1 for _ in candidates[identifier])

    def _installed_id(self, name: str) -> int | None:
        inst = self.index.installed.get(name)
        return inst.module_id if inst else None

    def _allows(self, requirement: Requirement, candidate: Candidate) -> bool:
        key = (requirement.constraint.text, candidate.id)
        allowed = self._allowed.get(key)
        if allowed is None:
            installed_id = self._installed_id(candidate.name)
            allowed = self._allowed[key] = requirement.allows(candidate, installed_id)
        return allowed

    def find_matches(self, identifier, requirements, incompatibilities):
        # A choice found incompatible is so for its dependencies, which its narrower
        # variants share: exclude them all.
        bad = frozenset(c.deps for c in incompatibilities[identifier])
        reqs = list(requirements[identifier])
        key = (identifier, frozenset(r.constraint.text for r in reqs), bad)
        found = self._matches.get(key)
        if found is None:
            found = self._matches[key] = self._choices(identifier, reqs, bad)
        return list(found)

    def _choices(self, identifier: str, reqs: list[Requirement], bad: frozenset) -> list[Choice]:
        installed_id = self._installed_id(identifier)
        groups: dict[tuple, list[Candidate]] = {}
        for c in self.index.candidates(identifier):  # highest first
            if c.deps not in bad and all(self._allows(r, c) for r in reqs):
                groups.setdefault(c.deps, []).append(c)
        choices = []
        for deps, releases in groups.items():
            # What is installed is kept when it fits; otherwise the highest version wins.
            best = next((c for c in releases if c.id == installed_id), releases[0])
            choices.append(Choice(identifier, deps, tuple(releases), best))
        # Choices come highest release first; sorted() is stable.
        return sorted(choices, key=lambda ch: ch.best.id != installed_id)

    def is_satisfied_by(self, requirement, candidate) -> bool:
        # Every release left in the choice must satisfy it: a requirement that allows only
        # some of them makes resolvelib ask again, and find_matches narrows the choice.
        text = requirement.constraint.text
        satisfied = candidate.satisfies.get(text)
        if satisfied is None:
            satisfied = all(self._allows(requirement, c) for c in candidate.releases)
            candidate.satisfies[text] = satisfied
        return satisfied

    def get_dependencies(self, candidate):
        return [
            Requirement(name, _constraint(text), str(candidate)) for name, text in candidate.deps
        ]


def installed_modules(company: Company) -> dict[str, Installation]:
    rows = db.session.execute(
        sa.select(Installation)
        .where(
            Installation.company_id == company.id,
            Installation.status == InstallationStatus.INSTALLED,
        )
        # The releases' dependency rows only when asked for (plans read the manifest).
        .options(joinedload(Installation.release).lazyload(ModuleRelease.dependencies))
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
    index.load_closure([name])
    # Every other installed module keeps its release, so its dependencies' constraints bind:
    # those on the names this plan may change, the closure just loaded (no other name can
    # be reached, so every other one stays as it is).
    for inst_name, inst in installed.items():
        if inst_name == name:
            continue
        holder = f"{inst_name} {inst.release.version} (installed)"
        for dep, text in required_module_dependencies(inst.release.manifest):
            if dep in index.by_name:
                roots.append(Requirement(dep, _constraint(text), holder))
    provider = _Provider(index)
    index.prune(roots, provider._allows)
    try:
        result = Resolver(provider, BaseReporter()).resolve(roots, max_rounds=MAX_ROUNDS)
    except ResolutionImpossible as exc:
        raise _explain(exc, index, company, roots, provider._allows) from None
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
    for name, choice in mapping.items():
        cand = choice.best
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


def _explain(
    exc: ResolutionImpossible, index: ReleaseIndex, company: Company, roots: list, allows
) -> NoPlan:
    by_name: dict[str, list[tuple[str, str]]] = {}
    for info in exc.causes:
        who = str(info.parent) if info.parent is not None else info.requirement.required_by
        by_name.setdefault(info.requirement.name, []).append(
            (who, str(info.requirement.constraint))
        )
    reasons, missing, involves_installed = [], [], False
    for name, needs in by_name.items():
        needs = list(dict.fromkeys(needs))
        dead_end = _DeadEnds(index, company, roots, allows)
        why = dead_end.explain(name, [text for _who, text in needs])
        if why:
            # Releases fit every requirement here, but prune() set them aside: say why.
            wanted = " and ".join(f"{w} needs {name} {c}" for w, c in needs)
            reasons.append(f"{wanted}, {why}.")
            missing += dead_end.missing
            involves_installed = involves_installed or dead_end.involves_installed
            continue
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


class _DeadEnds:
    """Why the releases prune() set aside cannot be used, as a chain a person can follow:
    "but billing 1.0.0 needs ledger ^1.0.0, and no release of ledger is available to acme"."""

    MAX_DEPTH = 6

    def __init__(self, index: ReleaseIndex, company: Company, roots: list, allows):
        self.index, self.company, self.allows = index, company, allows
        self.roots: dict[str, list[Requirement]] = {}
        for req in roots:
            self.roots.setdefault(req.name, []).append(req)
        self.missing: list[str] = []
        self.involves_installed = False

    def explain(self, name: str, texts: list[str]) -> str:
        """A clause starting with "but" when releases of `name` fit all `texts` but were
        set aside; "" when none fits at all (resolvelib's causes say enough then)."""
        reqs = [Requirement(name, _constraint(t), "") for t in texts]
        fits = [c for c in self.index.by_name.get(name, []) if all(self.allows(r, c) for r in reqs)]
        usable = {c.id for c in self.index.viable.get(name, fits)}
        if not fits or any(c.id in usable for c in fits):
            return ""
        clauses = self._why(name, fits, depth=0, seen=set())
        return "but " + ", and ".join(clauses)

    def _why(self, name: str, fits: list[Candidate], depth: int, seen: set) -> list[str]:
        """Clauses saying why the highest of `fits` (releases of `name`) is not usable."""
        release = fits[0]
        held = [r for r in self.roots.get(name, []) if not self.allows(r, release)]
        if held:  # the request, or an installed module's dependency, excludes it
            requested = [r for r in held if r.required_by == "the request"]
            if requested:
                return [f"the request asks for {name} {requested[0].constraint}"]
            self.involves_installed = True
            holders = ", ".join(
                f"{r.required_by.removesuffix(' (installed)')} needs as {r.constraint}"
                for r in held
            )
            inst = self.index.installed.get(name)
            have = f"{name} {inst.release.version}" if inst is not None else f"no {name}"
            return [f"{self.company.slug} has {have}, which {holders}"]
        dead = self.index.dead.get((name, release.deps))
        if dead is None or depth >= self.MAX_DEPTH or (name, release.deps) in seen:
            return [f"{release} cannot be used"]
        seen.add((name, release.deps))
        dep, text = dead
        clause = f"{release} needs {dep} {text}"
        req = Requirement(dep, _constraint(text), "")
        releases = self.index.by_name.get(dep, [])
        if not releases:
            self.missing.append(dep)
            return [clause, f"no release of {dep} is available to {self.company.slug}"]
        allowed = [c for c in releases if self.allows(req, c)]
        if not allowed:
            shown = ", ".join(self.index.versions(dep)[:10]) or "none"
            return [clause, f"no release of {dep} satisfies {text} (available: {shown})"]
        return [clause, *self._why(dep, allowed, depth + 1, seen)]
