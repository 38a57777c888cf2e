"""Install plans on a large synthetic registry: time and SQL statements per plan.

What we measure: `plan_installation` (the service behind POST
/api/v1/installations/plan: company, target, installed modules, then the resolver:
closure loaded, dead ends pruned, resolvelib) for 100 seeded random targets, on a
registry of 2,000 names x 20 approved versions (40,000 releases whose manifests carry
`type: module` dependencies; see `registry_plan` for the graph, its conflicting diamonds
and planted dead ends). Two companies plan: `fresh` (nothing installed) and `busy` (the
plans of 8 random targets installed first). Each target is planned `--repeats` times in
a new session (the median kept) after 10 warm-up plans: wall time, CPU time, time inside
SQL and the number of statements (a `before_cursor_execute` listener).
Against what: there is no baseline to divide by, so the time target is absolute; the
statement counts are compared with the same registry at `--compare-versions` (5)
versions per name, on a fresh database.
Target: p95 under 200 ms per plan at 20 versions per name, and the same statements per
plan at both sizes (they do not grow with the number of candidates).

    python -m bench.resolver [--names 2000] [--versions 20] [--compare-versions 5]
        [--plans 100] [--repeats 3] [--seed 5] [--profile]
        [--database-url URL | sqlite] [--quick]
"""

from __future__ import annotations

import cProfile
import random
import statistics
import time
from contextlib import ExitStack

import resolvelib
import sqlalchemy as sa

import portal.services.installations.resolver as resolver_module
from bench import harness
from portal.extensions import db
from portal.lib.versions import sort_key
from portal.models import Company, ModuleRelease, User
from portal.models.base import utcnow
from portal.services.accounts import users as accounts
from portal.services.catalog.names import fold_name
from portal.services.errors import Conflict, NotFound, ValidationFailed
from portal.services.installations.installs import (
    InstallRequest,
    install_module,
    plan_installation,
)

TARGET_P95_MS = 200.0
LAYERS = 8
MAJORS = 5
INSERT_CHUNK = 2_000
WARMUP = 10
BUSY_INSTALLS = 8
PASSWORD = "bench-password-1"
QUICK = {"names": 200, "versions": 10, "compare_versions": 5, "plans": 10, "repeats": 1}


# --- the synthetic registry ------------------------------------------------------------


def module_name(i: int) -> str:
    return f"mod-{i:04d}"


def _constraint(rng: random.Random) -> str:
    """A constraint on a dependency's majors (1..5), mostly toward the newest ones."""
    major = rng.choices([5, 4, 3, 2, 1], weights=[40, 25, 15, 12, 8])[0]
    kind = rng.choices(["caret", "floor", "range", "below", "any"], [45, 20, 15, 8, 12])[0]
    if kind == "caret":
        return f"^{major}.0.0"
    if kind == "floor":
        return f">={major}.0.0"
    if kind == "range":
        low = min(major, 4)
        return f">={low}.0.0 <{rng.randint(low + 1, MAJORS + 1)}.0.0"
    if kind == "below":
        return f"<{max(major, 2)}.0.0"
    return "*"


def registry_plan(names: int, seed: int) -> dict:
    """The graph, independent of the number of versions: per name and major, the
    dependencies with their constraints; which names are private; the seed's draws."""
    rng = random.Random(seed)
    per_layer = max(1, names // LAYERS)
    layer_of = [min(i // per_layer, LAYERS - 1) for i in range(names)]

    def lower(i: int) -> list[int]:
        layer = layer_of[i]
        start = (layer + 1) * per_layer
        stop = min(names, (layer + 3) * per_layer)
        return list(range(start, stop)) if layer < LAYERS - 1 and start < names else []

    majors: dict[int, dict[int, list[tuple[str, str]]]] = {}
    planted = 0
    for i in range(names):
        pool = lower(i)
        count = rng.choices([0, 1, 2, 3], weights=[25, 35, 25, 15])[0] if pool else 0
        base = rng.sample(pool, min(count, len(pool)))
        extra = rng.choice(pool) if pool and rng.random() < 0.3 else None
        impossible = bool(base) and rng.random() < 0.10
        planted += impossible
        majors[i] = {}
        for major in range(1, MAJORS + 1):
            deps = list(base) + ([extra] if extra is not None and major >= 3 else [])
            deps = list(dict.fromkeys(deps))
            pairs = [(module_name(d), _constraint(rng)) for d in deps]
            if impossible and major == MAJORS:
                pairs[0] = (pairs[0][0], "^9.0.0")  # needs a major that does not exist
            majors[i][major] = pairs
    private = set(rng.sample(range(names), names * 3 // 100))
    deprecate_seed = rng.randrange(1 << 30)
    return {
        "names": names,
        "majors": majors,
        "private": private,
        "planted_backtracking": planted,
        "deprecate_seed": deprecate_seed,
        # Targets and busy installs: names with dependencies that every company may see.
        "has_deps": [
            i for i in range(names) if (majors[i][1] or majors[i][MAJORS]) and i not in private
        ],
    }


def release_rows(graph: dict, versions: int, publisher_id: int, other_id: int, owner_id: int):
    """ModuleRelease rows, chunk by chunk: `versions // 5` minors per major."""
    minors = max(1, versions // MAJORS)
    rng = random.Random(graph["deprecate_seed"])
    now = utcnow()
    rows = []
    for i in range(graph["names"]):
        name = module_name(i)
        private = i in graph["private"]
        for major in range(1, MAJORS + 1):
            deps = graph["majors"][i][major]
            for minor in range(minors):
                version = f"{major}.{minor}.0"
                manifest = {
                    "name": name,
                    "version": version,
                    "description": f"{name} synthetic module",
                    "author": "bench",
                    "dependencies": [
                        {"name": d, "version": c, "type": "module", "optional": False}
                        for d, c in deps
                    ],
                }
                rows.append(
                    {
                        "name": name,
                        "name_fold": fold_name(name),
                        "version": version,
                        "version_key": sort_key(version),
                        "prerelease": False,
                        "is_latest": False,
                        "description": manifest["description"],
                        "author": "bench",
                        "tags": [],
                        "manifest": manifest,
                        "status": "deprecated" if rng.random() < 0.02 else "approved",
                        "visibility": "private" if private else "public",
                        "publisher_id": other_id if private else publisher_id,
                        "owner_id": owner_id,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                if len(rows) >= INSERT_CHUNK:
                    yield rows
                    rows = []
    if rows:
        yield rows


def build_registry(graph: dict, versions: int) -> dict:
    """Companies, users and the releases; returns ids and timings (untimed phase)."""
    started = time.perf_counter()
    accounts.create_company("pubco", "Publisher")
    accounts.create_company("other", "Other publisher")
    accounts.create_company("fresh", "Fresh")
    accounts.create_company("busy", "Busy")
    owner = accounts.create_user("dev@pubco.test", PASSWORD, "developer", "pubco")
    fresh = accounts.create_user("admin@fresh.test", PASSWORD, "company_admin", "fresh")
    busy = accounts.create_user("admin@busy.test", PASSWORD, "company_admin", "busy")
    companies = {c.slug: c.id for c in db.session.execute(sa.select(Company)).scalars()}
    total = 0
    for chunk in release_rows(graph, versions, companies["pubco"], companies["other"], owner.id):
        db.session.execute(sa.insert(ModuleRelease), chunk)
        total += len(chunk)
    db.session.commit()
    users = {"fresh": fresh.id, "busy": busy.id}
    harness.vacuum_analyze()
    return {
        "releases": total,
        "insert_s": round(time.perf_counter() - started, 2),
        "users": users,
    }


# --- measuring ------------------------------------------------------------------------


class PruneCounter:
    """Wraps ReleaseIndex.prune to count the releases it sets aside in each plan (the
    dead ends the search then never walks into)."""

    last = 0

    @classmethod
    def install(cls) -> None:
        original = resolver_module.ReleaseIndex.prune

        def prune(index, roots, allows):
            original(index, roots, allows)
            cls.last = sum(len(v) for v in index.by_name.values()) - sum(
                len(v) for v in index.viable.values()
            )

        resolver_module.ReleaseIndex.prune = prune


class CountingReporter(resolvelib.BaseReporter):
    """resolvelib's reporter hooks, counted: rounds, and conflicts resolved by backtracking."""

    last: CountingReporter | None = None

    def __init__(self):
        super().__init__()
        self.rounds = self.backtracks = 0
        CountingReporter.last = self

    def starting_round(self, index):
        self.rounds += 1

    def resolving_conflicts(self, causes):
        self.backtracks += 1


def one_plan(app, user_id: int, target: str, profiler=None) -> dict:
    """plan_installation for `target` in a new request context and session; timed."""
    with app.test_request_context():
        actor = db.session.get(User, user_id)
        _ = actor.company  # loaded by authentication in a request, before the service runs
        CountingReporter.last, PruneCounter.last = None, 0
        with harness.recorded_statements(db.engine) as sql:
            if profiler:
                profiler.enable()
            cpu_started = time.process_time()
            started = time.perf_counter()
            try:
                _company, plan = plan_installation(InstallRequest(module=target), actor=actor)
                outcome, steps = "plan", len(plan.steps)
            except ValidationFailed:
                outcome, steps = "no plan", 0
            except (Conflict, NotFound) as exc:
                outcome, steps = type(exc).__name__, 0
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            if profiler:
                profiler.disable()
        reporter = CountingReporter.last
        db.session.remove()
    return {
        "target": target,
        "ms": elapsed * 1000,
        "cpu_ms": cpu * 1000,
        "sql_ms": sum(seconds for _sql, _params, seconds in sql) * 1000,
        "statements": len(sql),
        "outcome": outcome,
        "steps": steps,
        "pruned": PruneCounter.last,
        "rounds": reporter.rounds if reporter else 0,
        "backtracks": reporter.backtracks if reporter else 0,
    }


def install_some(app, user_id: int, graph: dict, rng: random.Random) -> list[str]:
    """Install the plans of a few random targets for `busy` (untimed); returns the names
    installed."""
    installed: list[str] = []
    for target in rng.sample([module_name(i) for i in graph["has_deps"]], BUSY_INSTALLS * 3):
        if len(installed) >= BUSY_INSTALLS:
            break
        with app.test_request_context():
            actor = db.session.get(User, user_id)
            try:
                main, deps = install_module(
                    InstallRequest(module=target, install_dependencies=True), actor=actor
                )
                installed += [main.module_name, *(d.module_name for d in deps)]
            except (ValidationFailed, Conflict):
                pass
            db.session.remove()
    return installed


def median_of(tries: tuple[dict, ...]) -> dict:
    """One target's plan over the repetitions: the median of each timing (the counts are
    the same in every repetition), so a moment of load on a shared machine does not
    become the target's figure."""
    merged = dict(tries[0])
    for key in ("ms", "cpu_ms", "sql_ms"):
        merged[key] = statistics.median(t[key] for t in tries)
    merged["ms_runs"] = [round(t["ms"], 2) for t in tries]
    return merged


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = (len(ordered) - 1) * q
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summarize(plans: list[dict]) -> dict:
    ms = [p["ms"] for p in plans]
    statements = [p["statements"] for p in plans]
    outcomes: dict[str, int] = {}
    for p in plans:
        outcomes[p["outcome"]] = outcomes.get(p["outcome"], 0) + 1
    return {
        "plans": len(plans),
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p95_ms": round(percentile(ms, 0.95), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "cpu_p50_ms": round(percentile([p["cpu_ms"] for p in plans], 0.50), 2),
        "cpu_p95_ms": round(percentile([p["cpu_ms"] for p in plans], 0.95), 2),
        "sql_p50_ms": round(percentile([p["sql_ms"] for p in plans], 0.50), 2),
        "statements_mean": round(statistics.fmean(statements), 2),
        "statements_p50": percentile(statements, 0.5),
        "statements_max": max(statements),
        "steps_mean": round(statistics.fmean([p["steps"] for p in plans]), 1),
        "steps_max": max(p["steps"] for p in plans),
        "outcomes": outcomes,
        "backtracked": sum(1 for p in plans if p["backtracks"]),
        "pruned_plans": sum(1 for p in plans if p["pruned"]),
        "pruned_mean": round(statistics.fmean([p["pruned"] for p in plans]), 1),
        "rounds_max": max(p["rounds"] for p in plans),
    }


def run_registry(url: str, graph: dict, versions: int, args) -> dict:
    """One registry size in one fresh database: setup, warm-up, timed plans."""
    profiler = cProfile.Profile() if args.profile else None
    with harness.migrated_app(url) as app:
        setup = build_registry(graph, versions)
        print(f"    {setup['releases']:,} releases inserted in {setup['insert_s']} s", flush=True)
        rng = random.Random(args.seed + 1)
        busy_installed = install_some(app, setup["users"]["busy"], graph, rng)
        harness.vacuum_analyze()
        candidates = [module_name(i) for i in graph["has_deps"]]
        targets = [t for t in rng.sample(candidates, args.plans + WARMUP + 50)]
        targets = [t for t in targets if t not in busy_installed][: args.plans + WARMUP]
        companies = {
            company: time_plans(app, setup["users"][company], targets, args.repeats, profiler)
            for company in ("fresh", "busy")
        }
    if profiler:
        harness.print_profile(profiler, limit=25, title=f"Timed plans, {versions} versions")
    return {
        "versions_per_name": versions,
        "releases": setup["releases"],
        "insert_s": setup["insert_s"],
        "busy_installed": len(busy_installed),
        "companies": companies,
    }


def time_plans(app, user_id: int, targets: list[str], repeats: int, profiler) -> dict:
    """The warm-up plans, then each timed target `repeats` times, all targets in turn."""
    warm, timed = targets[:WARMUP], targets[WARMUP:]
    for target in warm:
        one_plan(app, user_id, target)
    runs = [
        [one_plan(app, user_id, t, profiler if rep == 0 else None) for t in timed]
        for rep in range(repeats)
    ]
    plans = [median_of(tries) for tries in zip(*runs, strict=True)]
    return {"summary": summarize(plans), "plans": plans}


# --- report -----------------------------------------------------------------------------------


def compare_statements(big: dict, small: dict) -> dict:
    """Per target, the statements of the same plan at both sizes."""
    same, differ = 0, []
    for company in ("fresh", "busy"):
        small_by_target = {p["target"]: p for p in small["companies"][company]["plans"]}
        for plan in big["companies"][company]["plans"]:
            other = small_by_target.get(plan["target"])
            if other is None:
                continue
            if other["statements"] == plan["statements"]:
                same += 1
            else:
                differ.append((company, plan["target"], other["statements"], plan["statements"]))
    return {"same": same, "different": len(differ), "examples": differ[:10]}


def print_summary(result: dict) -> None:
    print()
    print(
        f"Resolver benchmark: {result['names']:,} names, {result['database']}, "
        f"{result['cpus']} CPUs, resolvelib {result['resolvelib']}, {result['date']}"
    )
    print(
        f"  registry: {result['planted_backtracking']} names whose newest major needs a "
        "missing ^9 (backtracking planted), 2% deprecated, 3% foreign private"
    )
    header = (
        f"  {'versions':>8} {'company':<7} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} "
        f"{'cpu p50':>7} {'cpu p95':>7} {'sql p50':>7} {'stmts/plan':>14} {'steps':>7} "
        f"{'pruned':>7} {'backtr.':>7}  outcomes"
    )
    print(header)
    for run in result["runs"]:
        for company, data in run["companies"].items():
            s = data["summary"]
            stmts = f"{s['statements_mean']:.1f} (max {s['statements_max']})"
            steps = f"{s['steps_mean']:.0f}/{s['steps_max']}"
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(s["outcomes"].items()))
            print(
                f"  {run['versions_per_name']:>8} {company:<7} {s['p50_ms']:>7.1f} "
                f"{s['p95_ms']:>7.1f} {s['max_ms']:>7.1f} {s['cpu_p50_ms']:>7.1f} "
                f"{s['cpu_p95_ms']:>7.1f} {s['sql_p50_ms']:>7.1f} {stmts:>14} {steps:>7} "
                f"{s['pruned_plans']:>7} {s['backtracked']:>7}  {outcomes}"
            )
        print(
            f"  {'':>8} (setup: {run['releases']:,} releases inserted in {run['insert_s']} s; "
            f"busy has {run['busy_installed']} installed)"
        )
    load = result["loadavg_1m"]
    print(f"  load average (1 min) before and after: {load[0]}, {load[1]}")
    cmp = result.get("statements_compared")
    if cmp:
        print(
            f"\n  statements per plan, same target at {result['runs'][0]['versions_per_name']} "
            f"and {result['runs'][1]['versions_per_name']} versions per name: "
            f"{cmp['same']} equal, {cmp['different']} different"
        )
    p95 = max(d["summary"]["p95_ms"] for d in result["runs"][0]["companies"].values())
    verdict = "PASS" if p95 < TARGET_P95_MS else "FAIL"
    print(f"  target: p95 < {TARGET_P95_MS:.0f} ms: {verdict} (worst p95 {p95:.1f} ms)")


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(__doc__)
    parser.add_argument("--names", type=int, default=2000)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--compare-versions", type=int, default=5, help="0: no second registry")
    parser.add_argument("--plans", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="plans per target (median kept)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile the timed plans")
    args = harness.parse(parser, argv, QUICK)

    resolver_module.BaseReporter = CountingReporter  # counts rounds and backtracking
    PruneCounter.install()
    load_before = harness.load_1m()
    graph = registry_plan(args.names, args.seed)
    sizes = [args.versions] + ([args.compare_versions] if args.compare_versions else [])
    runs, backend = [], "?"
    for versions in sizes:
        with ExitStack() as stack:
            url, backend = harness.fresh_database(args.database_url, stack, "bench_resolver")
            print(f"  {versions} versions per name: building the registry ...", flush=True)
            runs.append(run_registry(url, graph, versions, args))
            s = runs[-1]["companies"]["fresh"]["summary"]
            print(f"    fresh: p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms", flush=True)
    result = harness.run_info(
        "resolver",
        load_before,
        database=backend,
        names=args.names,
        plans=args.plans,
        repeats=args.repeats,
        seed=args.seed,
        sqlalchemy=sa.__version__,
        resolvelib=resolvelib.__version__,
        planted_backtracking=graph["planted_backtracking"],
        target_p95_ms=TARGET_P95_MS,
        runs=runs,
        statements_compared=compare_statements(runs[0], runs[1]) if len(runs) > 1 else None,
    )
    print_summary(result)
    harness.write_json(args.out, "resolver", backend, result)
    return 0


if __name__ == "__main__":
    harness.main_guard(main)
