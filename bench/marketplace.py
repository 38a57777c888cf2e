"""Marketplace and search under load: the page and the API against a bare Flask ceiling.

What we measure, on a seeded catalog of 10,000 names x 5 releases (bench/marketplace_seed.py)
in a fresh PostgreSQL database (full text and trigram indexes: PostgreSQL only):
1. Search statements (in-process): the statements `catalog.list_releases(q=..., latest=True)`
   runs for a company admin, captured from the engine, each under EXPLAIN (ANALYZE,
   BUFFERS) (median of 5) and timed from Python (median of 20), for a rare, a common and a
   misspelled term and a typing prefix; for comparison, the SQLite fallback's ILIKE shape
   on the same rows, where no index serves it. Target: the ranked statement under 3 ms.
2. Load (HTTP): gunicorn (2 sync workers; --worker-threads 4 serves as make run does)
   running `bench_app()` below. After sequential samples (where a request's time goes:
   app, SQL, statements), `wrk` (1 thread, 16 connections, 10 s per run) drives in turn,
   `--repeats` times: the marketplace page `/?q=<term>` (signed in through the login
   form), `GET /api/v1/modules/?q=<term>&latest=true` (bearer token) and, against what,
   the ceiling: `GET /bench/ceiling`, a bare Flask view rendering a 20-row template (no
   database, no session). Every non-200 is counted. Target: req/s at least 40% of the
   ceiling's (median of the ratios paired by repetition), p99 under 150 ms (median).

    python -m bench.marketplace [--names 10000] [--releases 5] [--duration 10]
        [--connections 16] [--workers 2] [--worker-threads 1] [--repeats 3]
        [--targets page,fragment,api,ceiling] [--no-cache] [--profile]
        [--skip-queries] [--skip-load] [--database-url URL] [--quick]

`fragment` is the page as search-as-you-type fetches it (HX-Request: the results block
only). `--no-cache` serves with CATALOG_CACHE_ENTRIES=0: every request ranks its search
and computes its filter menus (cold), where the default repeats four queries and so
measures warm caches. Needs `wrk` (Debian: apt-get install wrk).
"""

from __future__ import annotations

import html
import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path
from urllib.parse import quote, urlencode

from bench import harness
from bench.marketplace_seed import (
    BROWSER,
    CATEGORIES,
    MISSPELLED,
    MISSPELLED_TARGET,
    PASSWORD,
    RARE_NAMES,
    TAGS,
    TERMS,
    describe,
    module_names,
    seed,
)

USER_AGENT = "bench-marketplace"
TARGET_RATIO = 0.40
TARGET_P99_MS = 150.0
TARGET_QUERY_MS = 3.0
TARGETS = ("page", "fragment", "api", "ceiling")
DEFAULT_TARGETS = ("page", "api", "ceiling")
EXPLAIN_RUNS = 5
CLIENT_RUNS = 20
SAMPLES_PER_TERM = 8
QUICK = {"names": 300, "releases": 2, "duration": 2, "repeats": 1}


# --- search statements (in-process) --------------------------------------------------------


def _plan_nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def explain(conn, statement: str, params) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of one statement, EXPLAIN_RUNS times; medians."""
    runs = []
    for _ in range(EXPLAIN_RUNS):
        out = conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, params
        ).scalar()
        runs.append(out[0] if isinstance(out, list) else json.loads(out)[0])
    last = runs[-1]
    nodes = list(_plan_nodes(last["Plan"]))
    timings = []
    for _ in range(CLIENT_RUNS):
        started = time.perf_counter()
        conn.exec_driver_sql(statement, params).fetchall()
        timings.append(time.perf_counter() - started)
    return {
        "execution_ms": round(statistics.median(r["Execution Time"] for r in runs), 3),
        "planning_ms": round(statistics.median(r["Planning Time"] for r in runs), 3),
        "client_ms": round(statistics.median(timings) * 1000, 3),
        "indexes": sorted({n["Index Name"] for n in nodes if "Index Name" in n}),
        "node_types": [n["Node Type"] for n in nodes],
        "rows": last["Plan"].get("Actual Rows"),
        "shared_hit": last["Plan"].get("Shared Hit Blocks"),
        "shared_read": last["Plan"].get("Shared Read Blocks"),
        "text": None,
    }


def explain_text(conn, statement: str, params) -> str:
    rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params).scalars()
    return "\n".join(rows)


def _incidental(sql: str) -> bool:
    """The actor's reload (after a rollback) and the dependencies' selectin load."""
    head = sql.split(" WHERE ", 1)[0]
    return "FROM users" in head or "FROM module_dependencies" in head


def _kind(sql: str) -> str:
    if "ts_rank" in sql:
        return "search"
    return "count" if sql.startswith("SELECT count(*)") else "rows"


def time_queries() -> dict:
    """Per term, the statements list_releases runs for the company admin (in the app
    context; TestConfig keeps the catalog cache off, so these are a cache miss's), timed
    under EXPLAIN; the matches of each half of the search; the unindexed ILIKE fallback."""
    import sqlalchemy as sa

    from portal.extensions import db
    from portal.models import ModuleRelease
    from portal.services.accounts import users
    from portal.services.catalog import queries as catalog
    from portal.services.catalog.cards import CARDS

    actor = users.user_by_email(BROWSER)
    base = sa.select(ModuleRelease).where(
        ModuleRelease.is_latest,
        catalog.visibility_clause(actor),
        ModuleRelease.status != "deprecated",
    )
    out: dict = {"terms": {}}
    for label, term in TERMS:
        with harness.recorded_statements(db.engine) as statements:
            page = catalog.list_releases(
                actor=actor, page=1, per_page=20, q=term, latest=True, present=CARDS
            )
        # The list's own statements (the ranked ids with their total, then the page's
        # rows by id); not the actor's reload after the previous term's rollback.
        own = [st[:2] for st in statements if not _incidental(st[0])]
        conn = db.session.connection()
        listed = [{"kind": _kind(sql), **explain(conn, sql, params)} for sql, params in own]
        ranked = next(i for i, (sql, _params) in enumerate(own) if "ts_rank" in sql)
        entry = {
            "term": term,
            "total": page.total,
            "top": [card.name for card in page.items][:5],
            **half_matches(base, term),
            "search": listed[ranked] | {"text": explain_text(conn, *own[ranked])},
            "list_statements": listed,
            "list_ms": round(sum(x["execution_ms"] for x in listed), 3),
            **ilike_fallback(base, term),
        }
        entry["search"]["sql"] = own[ranked][0]
        out["terms"][label] = entry
        db.session.rollback()
    db.session.remove()
    return out


def half_matches(base, term: str) -> dict:
    """How many latest rows full text alone, and trigram similarity alone, match."""
    import sqlalchemy as sa

    from portal.extensions import db
    from portal.models import ModuleRelease
    from portal.models.modules import SEARCH_VECTOR
    from portal.services.catalog import search

    terms = search.search_terms(term)
    tsquery = sa.func.to_tsquery(
        sa.literal_column("'simple'::regconfig"), " & ".join(f"{t}:*" for t in terms)
    )
    fulltext = base.where(SEARCH_VECTOR.op("@@")(tsquery))
    trigram = base.where(ModuleRelease.name.op("%")(" ".join(terms)))
    count = sa.select(sa.func.count()).select_from
    return {
        "matches_fulltext": db.session.execute(count(fulltext.subquery())).scalar(),
        "matches_trigram": db.session.execute(count(trigram.subquery())).scalar(),
    }


def ilike_fallback(base, term: str) -> dict:
    """The SQLite fallback's shape (ILIKE '%term%' over four fields) run on PostgreSQL,
    where no index serves it: its page and its count, under EXPLAIN."""
    import sqlalchemy as sa

    from portal.extensions import db
    from portal.services.catalog import search

    ilike = search._sqlite(base, search.search_terms(term))
    ilike_count = sa.select(sa.func.count()).select_from(ilike.order_by(None).subquery())
    with harness.recorded_statements(db.engine) as statements:
        db.session.execute(ilike.limit(20)).all()
        matches = db.session.execute(ilike_count).scalar()
    items, count = [st[:2] for st in statements if not _incidental(st[0])][:2]
    conn = db.session.connection()
    return {
        "ilike_items": explain(conn, *items),
        "ilike_count": explain(conn, *count) | {"matches": matches},
    }


# --- the app gunicorn serves ----------------------------------------------------------------

CEILING_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ceiling</title></head>
<body><main><h1>Modules</h1><p>{{ rows | length }} modules</p>
<div class="grid">
{% for row in rows %}<article class="card" data-name="{{ row.name }}">
  <h2><a href="/modules/{{ row.name }}">{{ row.display_name }}</a></h2>
  <p><code>{{ row.name }}</code> · {{ row.version }}</p>
  <p>{{ row.description }}</p>
  <p>by {{ row.publisher }} · {{ row.category }}</p>
  <ul>{% for tag in row.tags %}<li><a href="/?tag={{ tag }}">{{ tag }}</a></li>{% endfor %}</ul>
  <p>Used by {{ row.used }} companies</p>
</article>
{% endfor %}</div></main></body></html>
"""


def bench_app():
    """The registry app as wsgi.py builds it (configured from the environment), plus
    `GET /bench/ceiling`: a bare Flask view rendering a 20-row template (compiled once,
    as Flask caches file templates): no database, no session, no context processors.
    X-Bench-Timings gives "app", "sql" and "statements" per request."""
    from portal import create_app
    from portal.config import Config

    app = harness.instrument(create_app(Config()), count_sql=True)
    rng = random.Random(1)
    rows = [
        {
            "name": name,
            "display_name": name.replace("-", " ").title(),
            "version": f"1.{i}.0",
            "description": describe(name, rng),
            "publisher": "Acme Labs 01",
            "category": rng.choice(CATEGORIES),
            "tags": rng.sample(TAGS, 3),
            "used": i,
        }
        for i, name in enumerate(module_names(20, rng))
    ]
    ceiling = app.jinja_env.from_string(CEILING_TEMPLATE)

    @app.get("/bench/ceiling")
    def bench_ceiling():
        return ceiling.render(rows=rows)

    return app


# --- HTTP client (stdlib) ------------------------------------------------------------------


def get(port: int, target: str, headers: dict[str, str] | None = None):
    return harness.http_get(port, target, {"User-Agent": USER_AGENT, **(headers or {})})


def _cookie(headers: list[tuple[str, str]]) -> str:
    for key, value in headers:
        if key.lower() == "set-cookie" and value.startswith("session="):
            return value.split(";", 1)[0]
    raise RuntimeError("no session cookie in the answer")


def sign_in(port: int) -> str:
    """Sign in through the login form (CSRF token and all); returns 'session=...'."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/login", headers={"User-Agent": USER_AGENT})
        resp = conn.getresponse()
        page = resp.read().decode()
        cookie = _cookie(resp.getheaders())
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        if not match:
            raise RuntimeError("no CSRF token on the sign-in page")
        body = urlencode(
            {"csrf_token": html.unescape(match.group(1)), "email": BROWSER, "password": PASSWORD}
        )
        conn.request(
            "POST",
            "/login",
            body=body,
            headers={
                "User-Agent": USER_AGENT,
                "Cookie": cookie,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        resp = conn.getresponse()
        resp.read()
        if resp.status != 303:
            raise RuntimeError(f"sign-in answered {resp.status}")
        return _cookie(resp.getheaders())
    finally:
        conn.close()


def target_requests(target: str, cookie: str, token: str) -> tuple[list[str], dict[str, str]]:
    """(paths, headers) of a target; paths rotate over the query terms."""
    if target in ("page", "fragment"):
        headers = {"Cookie": cookie}
        if target == "fragment":  # what search-as-you-type sends: only the results block
            headers |= {"HX-Request": "true", "HX-Current-URL": "http://127.0.0.1/"}
        return [f"/?q={quote(term)}" for _label, term in TERMS], headers
    if target == "api":
        paths = [f"/api/v1/modules/?q={quote(term)}&latest=true" for _label, term in TERMS]
        return paths, {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    return ["/bench/ceiling"], {}


def check_target(port: int, target: str, cookie: str, token: str) -> None:
    """Every path of the target answers 200 with results (not a sign-in redirect)."""
    paths, headers = target_requests(target, cookie, token)
    for path in paths:
        status, _h, body = get(port, path, headers)
        if status != 200:
            raise RuntimeError(f"{target} {path}: {status} {body[:300]!r}")
        if target == "api":
            data = json.loads(body)
            if not data["items"] or "dependencies" not in data["items"][0]:
                raise RuntimeError(f"{target} {path}: no items")
        elif target in ("page", "fragment"):
            if b'data-testid="module-card"' not in body:
                raise RuntimeError(f"{target} {path}: no module cards")
            if (target == "fragment") == (b"<html" in body):
                raise RuntimeError(f"{target} {path}: full page and fragment mixed up")


def sample_breakdown(port: int, target: str, cookie: str, token: str) -> dict:
    """Sequential requests (one at a time), SAMPLES_PER_TERM per path: medians of the wall
    time and of the X-Bench-Timings header, over all paths and per query term."""
    paths, headers = target_requests(target, cookie, token)
    labels = [label for label, _term in TERMS] if len(paths) == len(TERMS) else ["-"]
    per_path: dict[str, dict[str, list[float]]] = {}
    for _ in range(SAMPLES_PER_TERM):
        for label, path in zip(labels, paths, strict=True):
            started = time.perf_counter()
            status, resp_headers, body = get(port, path, headers)
            wall = (time.perf_counter() - started) * 1000
            if status != 200:
                raise RuntimeError(f"{target} {path}: {status}")
            samples = per_path.setdefault(label, {"wall": [], "kb": []})
            samples["wall"].append(wall)
            samples["kb"].append(len(body) / 1024)
            for key, value in harness.parse_timings(resp_headers.get("X-Bench-Timings")).items():
                samples.setdefault(key, []).append(value)

    def medians(samples: dict[str, list[float]]) -> dict:
        return {
            ("statements" if k == "statements" else f"{k}_ms" if k != "kb" else k): round(
                statistics.median(v), 2
            )
            for k, v in samples.items()
        }

    overall: dict[str, list[float]] = {}
    for samples in per_path.values():
        for key, values in samples.items():
            overall.setdefault(key, []).extend(values)
    return {**medians(overall), "terms": {label: medians(v) for label, v in per_path.items()}}


def drain(port: int) -> None:
    """Wait until the requests wrk left queued are served, so the next run starts idle."""
    for _ in range(2):
        get(port, "/bench/ceiling")
    time.sleep(0.5)


# --- wrk -----------------------------------------------------------------------------------

WRK_SCRIPT = """
local paths = {%(paths)s}
counter = 0
bad = 0
wrk.method = "GET"
%(headers)s
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function request()
  counter = counter + 1
  return wrk.format(nil, paths[(counter %% #paths) + 1])
end
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
  local not_ok = 0
  for _, t in ipairs(threads) do not_ok = not_ok + t:get("bad") end
  io.write(string.format(
    'BENCH-JSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, "not_200": %%d, ' ..
    '"errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}, ' ..
    '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "mean_us": %%.1f, "max_us": %%d}\\n',
    summary.requests, summary.duration, summary.bytes, not_ok,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
"""


def _lua(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid Lua string literal for ASCII text


def wrk_script(path: Path, paths: list[str], headers: dict[str, str]) -> Path:
    lines = [
        f"wrk.headers[{_lua(k)}] = {_lua(v)}"
        for k, v in {"User-Agent": USER_AGENT, **headers}.items()
    ]
    path.write_text(
        WRK_SCRIPT
        % {
            "paths": ", ".join(_lua(p) for p in paths),
            "headers": "\n".join(lines),
        }
    )
    return path


def run_wrk(port: int, script: Path, args) -> dict:
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
    ]
    load_before = os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stderr or proc.stdout}")
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH-JSON ")), None)
    if line is None:
        raise RuntimeError(f"no summary from wrk: {proc.stdout}")
    raw = json.loads(line.removeprefix("BENCH-JSON "))
    errors = sum(raw["errors"].values())
    return {
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "requests": raw["requests"],
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "mean_ms": round(raw["mean_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "not_200": raw["not_200"],
        "errors": errors,
        "kb_per_request": round(raw["bytes"] / max(raw["requests"], 1) / 1024, 1),
        "loadavg_1m_before": round(load_before, 2),
    }


def wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return (out.stdout or out.stderr).splitlines()[0].strip()


# --- profiles ------------------------------------------------------------------------------


def run_profiles(port: int, cookie: str, token: str, targets, profile_dir: Path) -> None:
    """One request per target and term under cProfile in the worker."""
    for target in targets:
        if target == "ceiling":
            continue
        paths, headers = target_requests(target, cookie, token)
        for (term, _text), path in zip(TERMS, paths, strict=True):
            name = f"{target}-{term}"
            get(port, path, {**headers, "X-Bench-Profile": name})
            sort = os.environ.get("BENCH_PROFILE_SORT", "cumulative")
            harness.print_profile(profile_dir / f"{name}.prof", sort, 25, f"{target} {path}")


# --- report --------------------------------------------------------------------------------


def _median(values):
    return round(statistics.median(values), 2)


def summarize(runs: dict[str, list[dict]], ceiling: list[dict]) -> dict:
    out = {}
    for target, rows in runs.items():
        entry = {
            "rps": {"runs": [r["rps"] for r in rows], "median": _median([r["rps"] for r in rows])},
            "p50_ms": _median([r["p50_ms"] for r in rows]),
            "p99_ms": _median([r["p99_ms"] for r in rows]),
            "p99_ms_runs": [r["p99_ms"] for r in rows],
            "not_200": sum(r["not_200"] for r in rows),
            "errors": sum(r["errors"] for r in rows),
            "kb_per_request": rows[0]["kb_per_request"],
            "runs": rows,
        }
        if ceiling and rows is not ceiling:
            # Each run is paired with the ceiling run of the same repetition.
            ratios = [r["rps"] / c["rps"] for r, c in zip(rows, ceiling, strict=True)]
            entry["ratio"] = {
                "runs": [round(x, 4) for x in ratios],
                "median": round(statistics.median(ratios), 4),
                "best": round(max(ratios), 4),
            }
        out[target] = entry
    return out


def verdicts(load: dict, queries: dict | None) -> dict[str, bool]:
    result = {}
    for target, entry in load.items():
        if target == "ceiling":
            continue
        if "ratio" in entry:
            result[f"{target}: req/s >= 40% of the ceiling's (median ratio)"] = (
                entry["ratio"]["median"] >= TARGET_RATIO
            )
        result[f"{target}: p99 < 150 ms (median)"] = entry["p99_ms"] < TARGET_P99_MS
        result[f"{target}: every answer 200"] = entry["not_200"] == 0 and entry["errors"] == 0
    if queries:
        for label in ("rare", "common", "misspelled"):
            term = queries["terms"][label]
            result[f"search statement < 3 ms ({label})"] = (
                term["search"]["execution_ms"] < TARGET_QUERY_MS
            )
        misspelled = queries["terms"]["misspelled"]
        result["misspelled name found first (trigram), full text alone finds nothing"] = (
            misspelled["top"][:1] == [MISSPELLED_TARGET] and misspelled["matches_fulltext"] == 0
        )
        result["rare term finds exactly its modules"] = sorted(
            queries["terms"]["rare"]["top"]
        ) == sorted(RARE_NAMES)
    return result


def print_queries(queries: dict) -> None:
    print()
    print("  Search statements: latest=true, as the company admin")
    print(
        f"  {'term':<26}{'matches':>8}{'fts':>6}{'trgm':>6}{'search':>8}{'list':>8}"
        f"{'client':>8}{'plan':>6}{'ILIKE':>8}{'count':>8}   indexes (search)"
    )
    for label, t in queries["terms"].items():
        print(
            f"  {label + ' ' + repr(t['term']):<26}{t['total']:>8}{t['matches_fulltext']:>6}"
            f"{t['matches_trigram']:>6}{t['search']['execution_ms']:>8.2f}"
            f"{t['list_ms']:>8.2f}{t['search']['client_ms']:>8.2f}"
            f"{t['search']['planning_ms']:>6.2f}{t['ilike_items']['execution_ms']:>8.2f}"
            f"{t['ilike_count']['execution_ms']:>8.2f}   {', '.join(t['search']['indexes'])}"
        )
    print("  (ms. search: EXPLAIN ANALYZE execution time of the ranked statement, median of 5;")
    print("   list: all of list_releases' statements (ranked ids with the total, then rows);")
    print("   client: the ranked statement timed from Python, median of 20; plan: its planning")
    print("   time; ILIKE: the SQLite fallback's ILIKE '%term%' over four fields, run on")
    print("   PostgreSQL, page and count; fts / trgm: latest rows each half of the search matches)")
    top = queries["terms"]["misspelled"]["top"]
    print(f"  misspelled {MISSPELLED!r}: first results {top[:3]}")


def _worker_kind(threads: int) -> str:
    return "sync" if threads <= 1 else f"gthread, {threads} threads each"


def print_summary(result: dict) -> None:
    counts, load = result["counts"], result["loadavg_1m"]
    cache = "off (--no-cache)" if result["no_cache"] else "on"
    print(
        f"\nMarketplace benchmark: {counts['names']} names x {result['releases_per_name']} "
        f"releases, catalog cache {cache}, gunicorn {result['workers']} workers "
        f"({_worker_kind(result['worker_threads'])}), wrk {result['threads']} thread, "
        f"{result['connections']} connections, {result['duration_s']} s x {result['repeats']}"
        f" per target,\n  {result['cpus']} CPUs, Python {result['python']}, PostgreSQL "
        f"{result['postgresql'].split()[0]}, {result['date']}, 1-minute load average "
        f"{load[0]:.1f} before the load phase, {load[1]:.1f} after"
    )
    if result["queries"]:
        print_queries(result["queries"])
    if result["breakdown"]:
        print("\n  Sequential requests, medians in ms (X-Bench-Timings):")
        print(
            f"  {'target':<10}{'wall':>8}{'app':>8}{'sql':>8}{'stmts':>6}{'KB':>6}"
            "   app ms per term"
        )
        for target, b in result["breakdown"].items():
            terms = ", ".join(
                f"{term} {t.get('app_ms', 0):.1f}" for term, t in b["terms"].items() if term != "-"
            )
            print(
                f"  {target:<10}{b['wall_ms']:>8.2f}{b.get('app_ms', 0):>8.2f}"
                f"{b.get('sql_ms', 0):>8.2f}{b.get('statements', 0):>6.0f}{b['kb']:>6.1f}   {terms}"
            )
    if result["load"]:
        print(f"\n  Load, median of {result['repeats']} runs:")
        print(
            f"  {'target':<10}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'x ceiling':>11}"
            f"   {'req/s per run':<22}{'non-200':>8}"
        )
        for target, entry in result["load"].items():
            ratio = entry.get("ratio", {}).get("median")
            print(
                f"  {target:<10}{entry['rps']['median']:>8.1f}{entry['p50_ms']:>9.1f}"
                f"{entry['p99_ms']:>9.1f}{'' if ratio is None else f'{ratio:.3f}':>11}"
                f"   {', '.join(f'{x:.0f}' for x in entry['rps']['runs']):<22}"
                f"{entry['not_200'] + entry['errors']:>8}"
            )
    print()
    for target, ok in result["verdicts"].items():
        print(f"  {target}: {'PASS' if ok else 'FAIL'}")
    if result["queries"]:
        plan = result["queries"]["terms"]["common"]["search"]["text"]
        print("\n  EXPLAIN (ANALYZE, BUFFERS) of the search, common term:")
        print("    " + "\n    ".join(plan.splitlines()))


# --- phases --------------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None):
    parser = harness.arguments(__doc__, sqlite=False)
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument("--releases", type=int, default=5, help="releases per name")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--worker-threads", type=int, default=1, help="1: sync workers; make run serves with 4"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument(
        "--targets", default=",".join(DEFAULT_TARGETS), help=f"known: {', '.join(TARGETS)}"
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="serve with CATALOG_CACHE_ENTRIES=0 (cold)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one request per target")
    parser.add_argument("--skip-queries", action="store_true", help="no search statement timing")
    parser.add_argument("--skip-load", action="store_true", help="no HTTP load (queries only)")
    args = harness.parse(parser, argv, QUICK)
    if not args.database_url.startswith("postgres"):
        parser.error("PostgreSQL only: the subject is its full-text and trigram indexes")
    args.targets = [t for t in args.targets.split(",") if t]
    if not args.targets or set(args.targets) - set(TARGETS):
        parser.error(f"--targets: known targets are {', '.join(TARGETS)}")
    if "ceiling" in args.targets:  # last in each repeat: every run has a partner to compare with
        args.targets = [t for t in args.targets if t != "ceiling"] + ["ceiling"]
    if not args.skip_load and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")
    return args


def run_load(stack: ExitStack, args, url: str, tmp: Path, token: str) -> dict:
    """Serve, sign in, warm up, sample sequential requests, then drive every target with
    wrk in turn, `--repeats` times."""
    env = harness.server_env(url, tmp)
    if args.no_cache:
        env["CATALOG_CACHE_ENTRIES"] = "0"
    if args.profile:
        (tmp / "profiles").mkdir()
        env["BENCH_PROFILE_DIR"] = str(tmp / "profiles")
    app, threads = "bench.marketplace:bench_app()", args.worker_threads
    server = harness.start_server(
        stack, app, env, "/bench/ceiling", workers=args.workers, threads=threads
    )
    port, cookie = server.port, sign_in(server.port)
    for target in args.targets:
        check_target(port, target, cookie, token)
        paths, headers = target_requests(target, cookie, token)
        for _ in range(3 * args.workers):  # each worker imports, connects, fills its caches
            for path in paths:
                get(port, path, headers)
    print("sequential requests ...", flush=True)
    breakdown = {t: sample_breakdown(port, t, cookie, token) for t in args.targets}
    scripts = {
        t: wrk_script(tmp / f"wrk-{t}.lua", *target_requests(t, cookie, token))
        for t in args.targets
    }

    def drive(target: str) -> dict:
        row = run_wrk(port, scripts[target], args)
        drain(port)
        return row

    def report(rep: int, results: dict) -> None:
        for target, rows in results.items():
            row = rows[-1]
            print(
                f"  [{rep + 1}/{args.repeats}] {target}: {row['rps']:.1f} req/s, p50 "
                f"{row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, non-200 "
                f"{row['not_200'] + row['errors']}, load {row['loadavg_1m_before']}",
                flush=True,
            )

    load_before = harness.load_1m()
    runs = harness.alternate(
        {t: (lambda t=t: drive(t)) for t in args.targets}, args.repeats, report
    )
    load_after = harness.load_1m()
    if args.profile:
        run_profiles(port, cookie, token, args.targets, tmp / "profiles")
    return {
        "breakdown": breakdown,
        "load": summarize(runs, runs.get("ceiling", [])),
        "loadavg_1m": [load_before, load_after],
    }


def main(argv: list[str] | None = None) -> int:
    import sqlalchemy as sa

    from portal.extensions import db

    args = parse_arguments(argv)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-market-")))
        url, _ = harness.fresh_database(args.database_url, stack, "bench_marketplace")
        with harness.migrated_app(url):
            print(f"seeding {args.names} names x {args.releases} releases ...", flush=True)
            seeded = seed(args.names, args.releases, random.Random(args.seed))
            print(f"  {seeded['counts']}", flush=True)
            if not args.skip_queries:
                print("search statements ...", flush=True)
            queries = None if args.skip_queries else time_queries()
            pg_version = db.session.execute(sa.text("SHOW server_version")).scalar()
            db.session.remove()
        load = {"breakdown": {}, "load": {}, "loadavg_1m": [harness.load_1m()] * 2}
        if not args.skip_load:
            load = run_load(stack, args, url, tmp, seeded["token"])
    result = harness.run_info(
        "marketplace",
        load["loadavg_1m"][0],
        database="postgresql",
        postgresql=pg_version,
        releases_per_name=args.releases,
        counts=seeded["counts"],
        terms=dict(TERMS),
        targets_driven=args.targets,
        no_cache=args.no_cache,
        duration_s=args.duration,
        connections=args.connections,
        threads=args.threads,
        workers=args.workers,
        worker_threads=args.worker_threads,
        repeats=args.repeats,
        **{lib: metadata.version(lib) for lib in ("gunicorn", "flask", "sqlalchemy", "psycopg")},
        wrk=None if args.skip_load else wrk_version(),
        targets={
            "ratio_of_ceiling": TARGET_RATIO,
            "p99_ms": TARGET_P99_MS,
            "query_ms": TARGET_QUERY_MS,
        },
        queries=queries,
        breakdown=load["breakdown"],
        load=load["load"],
        verdicts=verdicts(load["load"], queries),
    )
    result["loadavg_1m"] = load["loadavg_1m"]  # around the load phase, not the whole run
    print_summary(result)
    key = "postgresql, no-cache" if args.no_cache else "postgresql"
    harness.write_json(args.out, "marketplace", key, result)
    return 0


if __name__ == "__main__":
    harness.main_guard(main)
