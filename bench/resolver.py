"""Install plans on a large synthetic registry: time per plan and SQL statements per plan.

Builds, in a fresh database, a seeded synthetic registry of 2,000 module names with 20
approved versions each (40,000 releases, bulk-inserted as ModuleRelease rows whose manifests
carry `type: module` dependencies), then times `plan_installation` (the service behind
POST /api/v1/installations/plan: company, target, installed modules, then the resolver:
closure loaded, dead ends pruned, resolvelib) for 100 seeded random targets, counting the
SQL statements each plan runs (a `before_cursor_execute` listener).

The registry (same seed, same graph at every size):
- names in 8 layers of 250; a name depends on 0-3 names of the next two layers, so a plan
  reaches a few to a few dozen names; majors 1..5, and `--versions / 5` minors per major
  (20 versions: x.0.0 .. x.3.0); every release of a major has that major's dependencies;
  from major 3 on, a name may gain one more dependency;
- constraints per (name, major, dependency), mostly toward the newest majors: `^K.0.0`,
  `>=K.0.0`, `>=K.0.0 <L.0.0`, `<K.0.0`, `*`; conflicting constraints in diamonds make
  resolvelib backtrack, and on 10% of the names with dependencies the newest major needs
  `^9.0.0` of a dependency (which does not exist), so the resolver must fall back to major 4;
- 2% of the releases are deprecated, 3% of the names are another company's private modules
  (neither is a candidate: both exercise the visibility rules).

Two companies plan: `fresh` (nothing installed) and `busy` (the plans of 8 random targets
installed first, untimed, so installed modules' constraints bind). Targets are names that
have dependencies, none installed. Each plan starts with a new session (as a request does),
after 10 untimed warm-up plans; each target is planned `--repeats` times (3) and its median
kept, and the wall time, this process's CPU time and the time inside SQL are reported
(on a shared machine the CPU time moves far less than the wall time). The whole run is
repeated with `--compare-versions` (5) versions per name on a fresh database: the
statements per plan must be the same, i.e. they do not grow with the number of candidates.

Target: p95 under 200 ms per plan (20 versions per name), statements per plan independent
of the number of versions.

    .venv/bin/python bench/resolver.py [--database-url URL | sqlite] [--names 2000]
        [--versions 20] [--compare-versions 5] [--plans 100] [--repeats 3] [--seed 5]
        [--profile]

A PostgreSQL URL names the server: a fresh database is created there per registry and
dropped at the end, even on failure. `sqlite` uses temporary SQLite files. Results go to
bench/out/resolver.json, one entry per database.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import flask_migrate  # noqa: E402
import resolvelib  # noqa: E402
import sqlalchemy as sa  # noqa: E402

import portal.services.installations.resolver as resolver_module  # noqa: E402
from portal import create_app  # noqa: E402
from portal.config import TestConfig  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.lib.versions import sort_key  # noqa: E402
from portal.models import Company, ModuleRelease, User  # noqa: E402
from portal.models.base import utcnow  # noqa: E402
from portal.services.accounts import users as accounts  # noqa: E402
from portal.services.catalog.names import fold_name  # noqa: E402
from portal.services.errors import Conflict, NotFound, ValidationFailed  # noqa: E402
from portal.services.installations.installs import (  # noqa: E402
    InstallRequest,
    install_module,
    plan_installation,
)

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
OUT = Path(__file__).resolve().parent / "out" / "resolver.json"
TARGET_P95_MS = 200.0
LAYERS = 8
MAJORS = 5
INSERT_CHUNK = 2_000
WARMUP = 10
BUSY_INSTALLS = 8
PASSWORD = "bench-password-1"


# --- the synthetic registry ------------------------------------------------------------


from _common import fresh_postgres  # noqa: E402  (bench/ is on sys.path)


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
    analyze()
    return {
        "releases": total,
        "insert_s": round(time.perf_counter() - started, 2),
        "users": users,
    }


def analyze() -> None:
    db.session.remove()
    sql = "VACUUM ANALYZE" if db.engine.dialect.name == "postgresql" else "ANALYZE"
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(sql)


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
        self.rounds = 0
        self.backtracks = 0
        self.rejected = 0
        CountingReporter.last = self

    def starting_round(self, index):
        self.rounds += 1

    def resolving_conflicts(self, causes):
        self.backtracks += 1

    def rejecting_candidate(self, criterion, candidate):
        self.rejected += 1


@contextmanager
def counting_statements():
    """Count (and time) SQL statements run while the block runs, on this thread."""
    stats = {"count": 0, "seconds": 0.0, "started": []}

    def before(conn, _cursor, _statement, _params, _context, _many):
        stats["count"] += 1
        stats["started"].append(time.perf_counter())

    def after(conn, _cursor, _statement, _params, _context, _many):
        stats["seconds"] += time.perf_counter() - stats["started"].pop()

    sa.event.listen(db.engine, "before_cursor_execute", before)
    sa.event.listen(db.engine, "after_cursor_execute", after)
    try:
        yield stats
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", before)
        sa.event.remove(db.engine, "after_cursor_execute", after)


def one_plan(app, user_id: int, target: str, profiler=None) -> dict:
    """plan_installation for `target` in a new request context and session; timed."""
    with app.test_request_context():
        actor = db.session.get(User, user_id)
        _ = actor.company  # loaded by authentication in a request, before the service runs
        CountingReporter.last, PruneCounter.last = None, 0
        with counting_statements() as sql:
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
        "sql_ms": sql["seconds"] * 1000,
        "statements": sql["count"],
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


def run_registry(url: str, graph: dict, versions: int, args, profile: bool) -> dict:
    """One registry size in one fresh database: setup, warm-up, timed plans."""
    app = create_app(TestConfig(url))
    profiler = cProfile.Profile() if profile else None
    with app.app_context():
        try:
            flask_migrate.upgrade()
            db.session.remove()
            setup = build_registry(graph, versions)
            print(
                f"    {setup['releases']:,} releases inserted in {setup['insert_s']} s",
                flush=True,
            )
            rng = random.Random(args.seed + 1)
            busy_installed = install_some(app, setup["users"]["busy"], graph, rng)
            analyze()
            candidates = [module_name(i) for i in graph["has_deps"]]
            targets = [t for t in rng.sample(candidates, args.plans + WARMUP + 50)]
            targets = [t for t in targets if t not in busy_installed][: args.plans + WARMUP]
            warm, timed = targets[:WARMUP], targets[WARMUP:]
            results = {}
            for company in ("fresh", "busy"):
                user_id = setup["users"][company]
                for target in warm:
                    one_plan(app, user_id, target)
                runs = [
                    [one_plan(app, user_id, t, profiler if rep == 0 else None) for t in timed]
                    for rep in range(args.repeats)
                ]
                plans = [median_of(tries) for tries in zip(*runs, strict=True)]
                results[company] = {"summary": summarize(plans), "plans": plans}
        finally:
            db.session.remove()
            db.engine.dispose()
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(f"\ncProfile of the timed plans, {versions} versions per name (top 25):")
        print(out.getvalue())
    return {
        "versions_per_name": versions,
        "releases": setup["releases"],
        "insert_s": setup["insert_s"],
        "busy_installed": len(busy_installed),
        "companies": results,
    }


# --- databases ----------------------------------------------------------------------------


def fresh_database(spec: str, stack: ExitStack) -> tuple[str, str]:
    """A new, empty database for one registry; returns (url, label). Dropped by `stack`."""
    if spec == "sqlite" or spec.startswith("sqlite:"):
        tmp = tempfile.TemporaryDirectory(prefix="bench-resolver-")
        stack.enter_context(tmp)
        return f"sqlite:///{Path(tmp.name) / 'resolver.db'}", "sqlite"
    return fresh_postgres(spec, stack, "bench_resolver")


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
    load = result["load_average_1m"]
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=DEFAULT_SERVER,
        help="PostgreSQL server (a fresh database is created on it per registry), or 'sqlite'",
    )
    parser.add_argument("--names", type=int, default=2000)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument(
        "--compare-versions", type=int, default=5, help="0 to skip the second registry"
    )
    parser.add_argument("--plans", type=int, default=100)
    parser.add_argument(
        "--repeats", type=int, default=3, help="times each target is planned (median kept)"
    )
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the timed plans (top 25, cumulative)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    resolver_module.BaseReporter = CountingReporter  # counts rounds and backtracking
    PruneCounter.install()
    load_before = os.getloadavg()[0]
    graph = registry_plan(args.names, args.seed)
    sizes = [args.versions] + ([args.compare_versions] if args.compare_versions else [])
    runs, backend = [], "?"
    for versions in sizes:
        with ExitStack() as stack:
            url, backend = fresh_database(args.database_url, stack)
            print(f"  {versions} versions per name: building the registry ...", flush=True)
            runs.append(run_registry(url, graph, versions, args, args.profile))
            s = runs[-1]["companies"]["fresh"]["summary"]
            print(f"    fresh: p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms", flush=True)
    result = {
        "benchmark": "resolver",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": backend,
        "names": args.names,
        "plans": args.plans,
        "repeats": args.repeats,
        "seed": args.seed,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlalchemy": sa.__version__,
        "resolvelib": resolvelib.__version__,
        "planted_backtracking": graph["planted_backtracking"],
        "target_p95_ms": TARGET_P95_MS,
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "runs": runs,
        "statements_compared": compare_statements(runs[0], runs[1]) if len(runs) > 1 else None,
    }
    print_summary(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results[backend] = result
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"  written to {args.out} ({backend})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
