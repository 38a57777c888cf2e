"""Marketplace and search under load: the page and the API against a bare Flask ceiling.

Seeds a fresh PostgreSQL database with 10,000 module names x 5 releases (50,000 approved,
public ModuleRelease rows, loaded with COPY: names, descriptions and tags from word lists,
version_key from portal.lib.versions, name_fold from portal.services.catalog.names, `is_latest` on
the newest stable release of each name, checked against the rule refresh_latest applies;
a fifth of the names have a newer pre-release, a third depend on other names, 41
companies have 25 installations each, so the cards' usage counts are real), then
VACUUM ANALYZE. Then, in the same run:

1. Query timing (in-process, no HTTP): the statements `catalog.list_releases(q=...,
   latest=True)` runs for the browsing company admin, captured from the engine, each
   under `EXPLAIN (ANALYZE, BUFFERS)` (median of 5) and timed from the client (median of
   20), for a rare, a common and a misspelled term and a typing prefix; the indexes the
   ranked statement uses; how many latest rows full text alone and trigram similarity
   alone match; and, for comparison, the app's SQLite fallback shape (ILIKE '%term%'
   over name, display name, tags and description) run on PostgreSQL, where no index
   serves it. Target: the ranked search statement under 3 ms (median execution time).
2. Load (HTTP): gunicorn, 2 workers (sync; --worker-threads 4 serves as make run does),
   serving bench_app() below: the app as wsgi.py
   builds it plus a bench-only route `GET /bench/ceiling`, a bare Flask view rendering a
   20-row Jinja template (no database, no session). First each target is sampled with
   sequential requests (where a request's time goes: app, SQL, statements, per term).
   Then `wrk` (1 thread, 16 connections, 10 s per run) drives, one after the other and
   `--repeats` times: the marketplace page `/?q=<term>` (signed in through the login form
   by a stdlib client; wrk sends that session cookie), `GET /api/v1/modules/?q=<term>
   &latest=true` (bearer API token) and the ceiling, each rotating over the same terms.
   Every non-200 answer is counted (a lost session would show as 302s); after each run
   the requests wrk left queued are drained before the next starts. Target: requests per
   second at least 40% of the ceiling's (median of the ratios paired by repetition), p99
   under 150 ms (median over the repetitions).

    .venv/bin/python bench/marketplace.py [--database-url URL] [--names 10000]
        [--releases 5] [--duration 10] [--connections 16] [--workers 2] [--repeats 3]
        [--targets page,api,ceiling] [--variants NAME,... [--variants ...]]
        [--profile] [--skip-queries] [--skip-load] [--out PATH]

`--targets` may add `fragment`: the page as search-as-you-type fetches it (HX-Request:
only the results block, no filter menus). Needs `wrk` (Debian: apt-get install wrk).
The database is created on the named PostgreSQL server and dropped at the end, even on
failure; gunicorn and the temp folders too. Results go to bench/out/marketplace.json,
one entry per set of configurations.

--variants patches proposed app changes (PROPOSALS below; portal/ is not edited) into
the query timing and into a gunicorn of its own, on its own copy of the seeded database
(CREATE DATABASE ... TEMPLATE), so no configuration warms another's caches. Given
several times, the configurations are
driven in turn within each repetition, so they see the same machine load.
"""

from __future__ import annotations

import argparse
import cProfile
import html
import http.client
import io
import json
import os
import platform
import pstats
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
OUT = BENCH / "out" / "marketplace.json"
USER_AGENT = "bench-marketplace"
BROWSER = "admin@customer.bench"
PASSWORD = "bench-" + "password-1"
TARGET_RATIO = 0.40
TARGET_P99_MS = 150.0
TARGET_QUERY_MS = 3.0
TARGETS = ("page", "fragment", "api", "ceiling")
DEFAULT_TARGETS = ("page", "api", "ceiling")
EXPLAIN_RUNS = 5
CLIENT_RUNS = 20
SAMPLES_PER_TERM = 8

# The query terms: (label, text). "rare" names 3 modules; "common" is in nearly half of
# the descriptions (46% of the modules: the worst case for ranking); "misspelled" is a
# typo of a real name (full text misses it, trigram similarity finds it); "prefix" is
# what search-as-you-type sends first.
RARE = "quickbooks"
RARE_NAMES = ("quickbooks-sync", "quickbooks-invoice-export", "quickbooks-payroll-bridge")
COMMON = "data"
MISSPELLED = "invocie-sync"
MISSPELLED_TARGET = "invoice-sync"
PREFIX = "inv"
TERMS = (("rare", RARE), ("common", COMMON), ("misspelled", MISSPELLED), ("prefix", PREFIX))


# --- word lists ----------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


DOMAINS = _words(
    "invoice payroll inventory ledger crm warehouse shipping billing tax expense budget "
    "procurement hr timesheet asset contract quote order catalog pricing loyalty campaign "
    "newsletter ticket helpdesk survey calendar booking fleet maintenance quality audit "
    "compliance document signature archive report forecast planning manufacturing recipe "
    "batch lot barcode label pos cashbox bank payment subscription membership event project "
    "task leave recruiting onboarding training skills vendor customer lead opportunity "
    "returns dunning treasury consolidation intercompany rental warranty"
)
FEATURES = _words(
    "sync connector bridge export import reports dashboard widgets api webhooks rules "
    "automation approvals notifications templates analytics scheduler gateway portal "
    "mobile ocr validator reconciliation backup workflow kpi alerts archive search"
)
QUALIFIERS = _words(
    "eu us uk de fr nl es it pl br mx in jp au ca ch at be se no dk fi pro lite plus "
    "legacy cloud sap shopify stripe paypal datev sepa gs1 edi xml csv pdf"
)
CATEGORIES = (
    "finance",
    "sales",
    "operations",
    "hr",
    "logistics",
    "marketing",
    "reporting",
    "integration",
    "compliance",
    "productivity",
    "manufacturing",
    "service",
)
TAGS = _words(
    "finance accounting hr logistics sales marketing reporting integration compliance "
    "automation mobile ai ocr edi b2b retail manufacturing healthcare education "
    "public-sector gdpr tax payments banking crm erp analytics excel api webhooks "
    "security backup notifications scheduling ecommerce pos iot multi-currency"
)
AUDIENCES = (
    "small businesses",
    "accounting teams",
    "warehouse staff",
    "field service teams",
    "finance departments",
    "retail chains",
    "manufacturers",
    "agencies",
    "wholesalers",
    "non-profits",
)
# A quarter of these mention "data" (the common term); each description has two.
SENTENCES = (
    "{D} {f} for {a}, with sensible defaults and a guided setup.",
    "Keeps your {d} data in sync with {q} systems every few minutes.",
    "Adds {f} to {d} records so {a} spend less time on manual work.",
    "Exports {d} data to CSV, Excel or PDF on a schedule you choose.",
    "Brings {q} conventions to {d}: numbering, formats and checks.",
    "A {f} that connects {d} with the rest of your ERP.",
    "Validates {d} data before it is posted and explains every rejection.",
    "Role-based {f} for {d}, built for {a}.",
    "Imports {d} from {q} files and matches them to existing records.",
    "Real-time {d} {f} with filters, saved views and sharing.",
    "Audit-ready {d} history: who changed what, when and why.",
    "Pushes {d} events to webhooks and retries failed deliveries.",
)
AUTHORS = ("Acme Labs", "Northwind Dev", "Blue Fjord", "Kestrel Works", "Tallow & Sons")


# --- database ------------------------------------------------------------------------------


def fresh_database(spec: str, stack: ExitStack, template: str | None = None) -> str:
    """A new PostgreSQL database for this run (empty, or a copy of `template`, a URL on
    the same server); dropped by `stack`."""
    import psycopg

    if not spec.startswith(("postgresql", "postgres:")):
        raise SystemExit("this benchmark needs PostgreSQL (full text, pg_trgm, EXPLAIN)")
    parts = urlsplit(spec.replace("postgresql+psycopg://", "postgresql://"))
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    name = f"bench_marketplace_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{urlsplit(template).path.lstrip("/")}"' if template else ""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy}')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    stack.callback(drop)
    return urlunsplit(parts._replace(path=f"/{name}"))


def vacuum_analyze(url: str) -> None:
    """Statistics for a copied database (CREATE DATABASE ... TEMPLATE copies no stats)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def make_app(url: str, storage: Path):
    from portal import create_app
    from portal.config import TestConfig

    return create_app(TestConfig(url, MODULE_STORAGE_PATH=str(storage)))


def module_names(count: int, rng: random.Random) -> list[str]:
    """`count` distinct realistic names, the rare and the misspelled term's target first."""
    names = list(RARE_NAMES) + [MISSPELLED_TARGET]
    seen = set(names)
    pairs = [f"{d}-{f}" for d in DOMAINS for f in FEATURES]
    rng.shuffle(pairs)
    for pair in pairs[: count // 5]:  # about a fifth are plain domain-feature names
        if pair not in seen:
            seen.add(pair)
            names.append(pair)
    while len(names) < count:
        name = f"{rng.choice(DOMAINS)}-{rng.choice(FEATURES)}-{rng.choice(QUALIFIERS)}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names[:count]


def versions_of(rng: random.Random, count: int) -> list[str]:
    """`count` increasing SemVer versions; about a fifth end with a pre-release."""
    major, minor, patch = rng.choice((0, 1, 1, 2, 3)), rng.randrange(4), 0
    out = []
    for _ in range(count):
        step = rng.random()
        if step < 0.5:
            patch += 1
        elif step < 0.85:
            minor, patch = minor + 1, 0
        else:
            major, minor, patch = major + 1, 0, 0
        out.append(f"{major}.{minor}.{patch}")
    if rng.random() < 0.2:
        out[-1] = f"{major + 1}.0.0-{rng.choice(('alpha', 'beta', 'rc'))}.{rng.randrange(1, 4)}"
    return out


def describe(name: str, rng: random.Random) -> str:
    words = name.split("-")
    domain, feature = words[0], words[1] if len(words) > 1 else "tools"
    qualifier = words[2] if len(words) > 2 else rng.choice(QUALIFIERS)
    text = " ".join(
        s.format(D=domain.capitalize(), d=domain, f=feature, a=rng.choice(AUDIENCES), q=qualifier)
        for s in rng.sample(SENTENCES, 2)
    )
    return text[:500]


def copy_rows(conn, table: str, rows: list[dict]) -> None:
    """COPY `rows` (dicts with the same keys) into `table`; lists and dicts as JSON text.
    (A multi-row INSERT of 50,000 rows spends most of its time in psycopg's Python
    placeholder parsing; COPY takes a second or two.)"""
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [json.dumps(v) if isinstance(v, dict | list) else v for v in row.values()]
            )


def seed(app, names: int, releases: int, rng: random.Random) -> dict:
    """Bulk-load the registry; returns what the run needs (the API token, counts)."""
    import sqlalchemy as sa

    from portal.extensions import db
    from portal.lib.versions import Version
    from portal.models import Company, User
    from portal.services.accounts import users
    from portal.services.catalog.names import fold_name

    started = time.perf_counter()
    with app.app_context():
        customer = users.create_company("customer", "Customer Bench Ltd")
        user = users.create_user(BROWSER, PASSWORD, "company_admin", "customer")
        _token, token = users.create_api_token(user, "marketplace benchmark")
        customer_id = customer.id
        db.session.remove()
        now = datetime.now(UTC)
        all_names = module_names(names, rng)
        with db.engine.begin() as conn:
            pub_ids = list(
                conn.execute(
                    sa.insert(Company).returning(Company.id, sort_by_parameter_order=True),
                    [
                        {"slug": f"publisher-{i:02d}", "name": f"{AUTHORS[i % 5]} {i:02d}"}
                        for i in range(25)
                    ],
                ).scalars()
            )
            owner_ids = list(
                conn.execute(
                    sa.insert(User).returning(User.id, sort_by_parameter_order=True),
                    [
                        {
                            "email": f"dev{i:02d}@publisher.bench",
                            "role": "developer",
                            "company_id": cid,
                            "password_hash": None,
                        }
                        for i, cid in enumerate(pub_ids)
                    ],
                ).scalars()
            )
            customer_ids = [customer_id] + list(
                conn.execute(
                    sa.insert(Company).returning(Company.id, sort_by_parameter_order=True),
                    [{"slug": f"customer-{i:02d}", "name": f"Customer {i:02d}"} for i in range(40)],
                ).scalars()
            )

            rows, deps_of = [], []  # deps_of[i]: the dependencies of rows[i]
            for n, name in enumerate(all_names):
                p = n % len(pub_ids)
                category = rng.choice(CATEGORIES)
                tags = rng.sample(TAGS, rng.randint(1, 4))
                display = " ".join(
                    w.upper() if len(w) <= 3 else w.capitalize() for w in name.split("-")
                )
                description = describe(name, rng)
                born = now - timedelta(days=rng.randrange(60, 730))
                versions = versions_of(rng, releases)
                parsed = [Version.parse(v) for v in versions]
                # api.md's latest: the newest by precedence, a stable release preferred.
                best = max(
                    range(len(versions)),
                    key=lambda i: (not parsed[i].is_prerelease, parsed[i].sort_key()),
                )
                # A third of the names depend on 1-2 others, from some version on.
                deps, since = [], rng.randrange(releases)
                if rng.random() < 1 / 3:
                    deps = [d for d in rng.sample(all_names, rng.randint(1, 2)) if d != name]
                for i, version in enumerate(versions):
                    created = born + timedelta(days=i * rng.randrange(5, 40))
                    own = [
                        {"name": d, "version": f"^{k}.0.0", "type": "module", "optional": False}
                        for k, d in enumerate(deps if i >= since else [])
                    ]
                    manifest = {
                        "name": name,
                        "version": version,
                        "display_name": display,
                        "description": description,
                        "author": AUTHORS[p % 5],
                        "category": category,
                        "tags": tags,
                        "dependencies": own,
                    }
                    deps_of.append(own)
                    rows.append(
                        {
                            "name": name,
                            "name_fold": fold_name(name),
                            "version": version,
                            "version_key": parsed[i].sort_key(),
                            "prerelease": parsed[i].is_prerelease,
                            "is_latest": i == best,
                            "display_name": display,
                            "description": description,
                            "author": AUTHORS[p % 5],
                            "category": category,
                            "tags": tags,
                            "manifest": manifest,
                            "status": "approved",
                            "visibility": "public",
                            "publisher_id": pub_ids[p],
                            "owner_id": owner_ids[p],
                            "created_at": created,
                            "updated_at": created,
                        }
                    )
            copy_rows(conn, "modules", rows)
            id_of = {
                (name, version): mid
                for mid, name, version in conn.execute(
                    sa.text("SELECT id, name, version FROM modules")
                )
            }
            latest_id = dict(
                conn.execute(sa.text("SELECT name, id FROM modules WHERE is_latest")).all()
            )
            deps = [
                {
                    "module_id": id_of[row["name"], row["version"]],
                    "position": position,
                    "name": dep["name"],
                    "constraint": dep["version"],
                    "type": "module",
                    "optional": False,
                }
                for row, own in zip(rows, deps_of, strict=True)
                for position, dep in enumerate(own)
            ]
            if deps:
                copy_rows(conn, "module_dependencies", deps)
            # Installations: each company uses 25 of the 600 most popular names.
            installs = [
                {
                    "company_id": cid,
                    "module_name": name,
                    "module_id": latest_id[name],
                    "status": "installed",
                    "config": {},
                    "revision": 1,
                    "health_status": "healthy",
                    "created_at": now,
                    "updated_at": now,
                }
                for cid in customer_ids
                for name in rng.sample(all_names[:600], 25)
            ]
            copy_rows(conn, "installations", installs)
        loaded = time.perf_counter()
        # Check the flag against the rule refresh_latest applies: one DISTINCT ON per name.
        with db.engine.connect() as conn:
            mismatches = conn.execute(
                sa.text(
                    "SELECT count(*) FROM (SELECT DISTINCT ON (name) id FROM modules "
                    "WHERE status = 'approved' ORDER BY name, prerelease, version_key DESC) "
                    "best FULL JOIN (SELECT id FROM modules WHERE is_latest) flag USING (id) "
                    "WHERE best.id IS NULL OR flag.id IS NULL"
                )
            ).scalar()
            if mismatches:
                raise AssertionError(f"is_latest differs from SemVer latest for {mismatches}")
            conn.rollback()
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        db.engine.dispose()
    return {
        "token": token,
        "counts": {
            "names": len(all_names),
            "releases": len(rows),
            "prerelease_releases": sum(1 for r in rows if r["prerelease"]),
            "names_with_newer_prerelease": sum(
                1 for r in rows if r["prerelease"] and not r["is_latest"]
            ),
            "dependencies": len(deps),
            "installations": len(installs),
            "publishers": len(pub_ids),
            "load_s": round(loaded - started, 1),
            "vacuum_analyze_s": round(time.perf_counter() - loaded, 1),
        },
    }


# --- query timing --------------------------------------------------------------------------


@contextmanager
def captured_statements(engine):
    """Every statement the engine runs inside the block: (SQL, parameters)."""
    from sqlalchemy import event

    statements: list[tuple[str, object]] = []

    def before(_conn, _cursor, statement, parameters, _context, _executemany):
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


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


def time_queries(app, variants: list[str]) -> dict:
    """The app's own search statements per term, the matches of each half of the search,
    and the unindexed ILIKE fallback shape for comparison."""
    import sqlalchemy as sa

    from portal.extensions import db
    from portal.models import ModuleRelease
    from portal.models.modules import SEARCH_VECTOR
    from portal.services.accounts import users
    from portal.services.catalog import queries as catalog
    from portal.services.catalog import search
    from portal.services.catalog.cards import CARDS

    out: dict = {"terms": {}, "variants": variants}
    with app.app_context():
        actor = users.user_by_email(BROWSER)
        base = sa.select(ModuleRelease).where(
            ModuleRelease.is_latest,
            catalog.visibility_clause(actor),
            ModuleRelease.status != "deprecated",
        )
        for label, term in TERMS:
            with captured_statements(db.engine) as statements:
                page = catalog.list_releases(
                    actor=actor, page=1, per_page=20, q=term, latest=True, present=CARDS
                )
            names = [card.name for card in page.items]
            # The list's own statements (the ranked ids with their total, then the page's
            # rows by id); not the actor's reload after the previous term's rollback.
            own = [st for st in statements if not _incidental(st[0])]
            terms = search.search_terms(term)
            tsquery = sa.func.to_tsquery(
                sa.literal_column("'simple'::regconfig"), " & ".join(f"{t}:*" for t in terms)
            )
            fulltext = db.session.execute(
                sa.select(sa.func.count()).select_from(
                    base.where(SEARCH_VECTOR.op("@@")(tsquery)).subquery()
                )
            ).scalar()
            trigram = db.session.execute(
                sa.select(sa.func.count()).select_from(
                    base.where(ModuleRelease.name.op("%")(" ".join(terms))).subquery()
                )
            ).scalar()
            # The SQLite fallback's shape (ILIKE '%term%' over four fields) on PostgreSQL.
            ilike = search._sqlite(base, terms)
            ilike_count = sa.select(sa.func.count()).select_from(ilike.order_by(None).subquery())
            with captured_statements(db.engine) as fallback:
                db.session.execute(ilike.limit(20)).all()
                ilike_matches = db.session.execute(ilike_count).scalar()
            conn = db.session.connection()
            listed = [{"kind": _kind(sql), **explain(conn, sql, params)} for sql, params in own]
            ranked = next(i for i, st in enumerate(own) if "ts_rank" in st[0])
            fallback = [st for st in fallback if not _incidental(st[0])]
            entry = {
                "term": term,
                "total": page.total,
                "top": names[:5],
                "matches_fulltext": fulltext,
                "matches_trigram": trigram,
                "search": listed[ranked],
                "list_statements": listed,
                "list_ms": round(sum(x["execution_ms"] for x in listed), 3),
                "ilike_items": explain(conn, *fallback[0]),
                "ilike_count": explain(conn, *fallback[1]),
            }
            entry["ilike_count"]["matches"] = ilike_matches
            entry["search"]["text"] = explain_text(conn, *own[ranked])
            entry["search"]["sql"] = own[ranked][0]
            out["terms"][label] = entry
            db.session.rollback()
        db.session.remove()
        db.engine.dispose()
    return out


# --- the WSGI app gunicorn serves ----------------------------------------------------------

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
    """The registry app as wsgi.py builds it (configured from the environment), plus:

    - `GET /bench/ceiling`: a bare Flask view rendering a 20-row template (compiled once,
      as Flask caches file templates): no database, no session, no context processors;
    - an `X-Bench-Timings` header on every response: "app" (the request from routing to
      the response), "sql" (time inside cursor.execute) and "statements";
    - with $BENCH_PROFILE_DIR set, cProfile of requests carrying `X-Bench-Profile: <name>`;
    - with $BENCH_VARIANTS set, the named PROPOSALS patched in before create_app.
    """
    from flask import g, has_request_context
    from sqlalchemy import event

    from portal import create_app
    from portal.config import Config
    from portal.extensions import db

    variants = [v for v in os.environ.get("BENCH_VARIANTS", "").split(",") if v]
    apply_proposals(variants)
    app = create_app(Config())
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

    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "before_cursor_execute")
    def _sql_start(_conn, _cursor, _statement, _params, context, _many):
        context._bench_started = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _sql_end(_conn, _cursor, _statement, _params, context, _many):
        if has_request_context():
            g.bench_sql = g.get("bench_sql", 0.0) + time.perf_counter() - context._bench_started
            g.bench_statements = g.get("bench_statements", 0) + 1

    @app.before_request
    def _start_clock():
        g.bench_started = time.perf_counter()

    @app.after_request
    def _timings(response):
        if "bench_started" in g:
            response.headers["X-Bench-Timings"] = (
                f"app={(time.perf_counter() - g.bench_started) * 1000:.3f};"
                f"sql={g.get('bench_sql', 0.0) * 1000:.3f};"
                f"statements={g.get('bench_statements', 0)}"
            )
        return response

    profile_dir = os.environ.get("BENCH_PROFILE_DIR")
    if profile_dir:
        inner = app.wsgi_app

        def profiled(environ, start_response):
            name = environ.get("HTTP_X_BENCH_PROFILE")
            if not name or not name.replace("-", "").isalnum():
                return inner(environ, start_response)
            profiler = cProfile.Profile()
            profiler.enable()
            try:
                return list(inner(environ, start_response))
            finally:
                profiler.disable()
                profiler.dump_stats(os.path.join(profile_dir, f"{name}.prof"))

        app.wsgi_app = profiled
    return app


# --- proposals (patched into the gunicorn worker; portal/ is not edited) -------------------


def _no_cache(undo: list) -> None:
    """Every request computes its search and filter menus (CATALOG_CACHE_ENTRIES=0): the
    cost of a cache miss on every request, as when each query is new."""
    before = os.environ.get("CATALOG_CACHE_ENTRIES")
    os.environ["CATALOG_CACHE_ENTRIES"] = "0"
    undo.append(
        lambda: (
            os.environ.pop("CATALOG_CACHE_ENTRIES", None)
            if before is None
            else os.environ.__setitem__("CATALOG_CACHE_ENTRIES", before)
        )
    )


# Configurations measured side by side with --variants: name -> fn(undo) patching portal
# in this process before create_app. The first set of proposals (stored vector,
# latest-only GIN indexes, kept filter menus, one-pass search, lean cards, full text
# ranked first) is in portal now (migration 0008); bench/README.md keeps their figures.
PROPOSALS: dict[str, object] = {"no-cache": _no_cache}


def apply_proposals(names: list[str]) -> None:
    """Patch the named proposals in for good (in the gunicorn worker, before create_app)."""
    for name in names:
        if name not in PROPOSALS:
            raise SystemExit(f"no such proposal {name!r}; known: {', '.join(PROPOSALS)}")
        PROPOSALS[name]([])


@contextmanager
def patched(variants: list[str]):
    """The proposals patched in this process (for the query timing), undone afterwards."""
    undo: list = []
    for name in variants:
        PROPOSALS[name](undo)
    try:
        yield
    finally:
        for restore in reversed(undo):
            restore()


def label_of(variants: list[str]) -> str:
    return "+".join(variants) if variants else "committed"


# --- gunicorn ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn with `workers` workers serving bench_app() of this file: sync, or with
    `threads` > 1 gthread (as `make run` serves, 4 threads)."""

    def __init__(self, env: dict[str, str], cwd: Path, workers: int, threads: int = 1):
        self.port = free_port()
        self.workers = workers
        gunicorn = ROOT / ".venv" / "bin" / "gunicorn"
        if not gunicorn.exists():
            gunicorn = Path(sys.executable).with_name("gunicorn")
        self.process = subprocess.Popen(
            [
                str(gunicorn),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                *(("--worker-class", "sync") if threads <= 1 else ("--threads", str(threads))),
                "--backlog",
                "2048",
                "--timeout",
                "120",
                "--graceful-timeout",
                "5",
                "--log-level",
                "warning",
                "--pythonpath",
                f"{ROOT},{BENCH}",
                "marketplace:bench_app()",
            ],
            env=env,
            cwd=cwd,  # an empty folder: no gunicorn.conf.py is picked up
        )

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Until a worker answers (booting takes seconds per worker on a busy machine)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                status, _h, _b = get(self.port, "/bench/ceiling", timeout=10)
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("gunicorn did not answer in time")

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def server_env(url: str, tmp: Path, variants: list[str], profile_dir: Path | None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN", "FLASK"))}
    for key in ("REDIS_URL", "SERVICE_REGISTRY_URL", "AUTH_SERVICE_URL", "DEBUG"):
        env.pop(key, None)
    env.update(
        DATABASE_URL=url,
        ENVIRONMENT="production",
        SECRET_KEY=secrets.token_hex(32),
        INSTANCE_PATH=str(tmp / "instance"),
        MODULE_STORAGE_PATH=str(tmp / "store"),
        BENCH_VARIANTS=",".join(variants),
        PYTHONDONTWRITEBYTECODE="1",
    )
    if profile_dir:
        env["BENCH_PROFILE_DIR"] = str(profile_dir)
    return env


# --- HTTP client (stdlib) ------------------------------------------------------------------


def get(port: int, target: str, headers: dict[str, str] | None = None, timeout: float = 120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", target, headers={"User-Agent": USER_AGENT, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


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
            for part in resp_headers.get("X-Bench-Timings", "").split(";"):
                key, _, value = part.partition("=")
                samples.setdefault(key, []).append(float(value))

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


# --- profiles ------------------------------------------------------------------------------


def run_profiles(servers: dict, cookies: dict, token: str, targets, profile_dir: Path) -> None:
    """One request per target and term under cProfile in the worker; top 20 functions."""
    for label, server in servers.items():
        for target in targets:
            if target == "ceiling":
                continue
            paths, headers = target_requests(target, cookies[label], token)
            for (term, _text), path in zip(TERMS, paths, strict=True):
                name = f"{label}-{target}-{term}".replace("+", "-").replace("_", "-")
                get(server.port, path, {**headers, "X-Bench-Profile": name})
                buf = io.StringIO()
                stats = pstats.Stats(str(profile_dir / f"{name}.prof"), stream=buf)
                stats.sort_stats(os.environ.get("BENCH_PROFILE_SORT", "cumulative")).print_stats(25)
                print(f"\n--- profile: {label} {target} {path} ---")
                print(buf.getvalue().strip())


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
    print(f"  Search statements ({queries['label']}): latest=true, as the company admin")
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
    print("   list: all of list_releases' statements (committed: the COUNT and the ranked page);")
    print("   client: the ranked statement timed from Python, median of 20; plan: its planning")
    print("   time; ILIKE: the SQLite fallback's ILIKE '%term%' over four fields, run on")
    print("   PostgreSQL, page and count; fts / trgm: latest rows each half of the search matches)")
    top = queries["terms"]["misspelled"]["top"]
    print(f"  misspelled {MISSPELLED!r}: first results {top[:3]}")


def _worker_kind(threads: int) -> str:
    return "sync" if threads <= 1 else f"gthread, {threads} threads each"


def print_summary(result: dict) -> None:
    print()
    counts = result["counts"]
    print(
        f"Marketplace benchmark: {counts['names']} names x {result['releases_per_name']} "
        f"releases, gunicorn {result['workers']} workers "
        f"({_worker_kind(result.get('worker_threads', 1))}), wrk {result['threads']} "
        f"thread, {result['connections']} connections, {result['duration_s']} s x "
        f"{result['repeats']} per target,"
    )
    print(
        f"  {result['cpus']} CPUs, Python {result['python']}, PostgreSQL "
        f"{result['postgresql'].split()[0]}, {result['date']}, 1-minute load average "
        f"{result['loadavg_1m'][0]:.1f} before the load phase, {result['loadavg_1m'][1]:.1f} after"
    )
    for queries in result["queries"]:
        print_queries(queries)
    for label, config in result["configs"].items():
        if config["breakdown"]:
            print()
            print(f"  Sequential requests ({label}), medians in ms (X-Bench-Timings):")
            print(
                f"  {'target':<10}{'wall':>8}{'app':>8}{'sql':>8}{'stmts':>6}{'KB':>6}"
                "   app ms per term"
            )
            for target, b in config["breakdown"].items():
                terms = ", ".join(
                    f"{term} {t.get('app_ms', 0):.1f}"
                    for term, t in b["terms"].items()
                    if term != "-"
                )
                print(
                    f"  {target:<10}{b['wall_ms']:>8.2f}{b.get('app_ms', 0):>8.2f}"
                    f"{b.get('sql_ms', 0):>8.2f}{b.get('statements', 0):>6.0f}"
                    f"{b['kb']:>6.1f}   {terms}"
                )
        if config["load"]:
            print()
            print(f"  Load ({label}), median of {result['repeats']} runs:")
            print(
                f"  {'target':<10}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'x ceiling':>11}"
                f"   {'req/s per run':<22}{'non-200':>8}"
            )
            for target, entry in config["load"].items():
                ratio = entry.get("ratio", {}).get("median")
                print(
                    f"  {target:<10}{entry['rps']['median']:>8.1f}{entry['p50_ms']:>9.1f}"
                    f"{entry['p99_ms']:>9.1f}{'' if ratio is None else f'{ratio:.3f}':>11}"
                    f"   {', '.join(f'{x:.0f}' for x in entry['rps']['runs']):<22}"
                    f"{entry['not_200'] + entry['errors']:>8}"
                )
        print()
        for target, ok in config["verdicts"].items():
            print(f"  {label}: {target}: {'PASS' if ok else 'FAIL'}")
    for queries in result["queries"]:
        plan = queries["terms"]["common"]["search"]["text"]
        print(f"\n  EXPLAIN (ANALYZE, BUFFERS) of the search, common term ({queries['label']}):")
        print("    " + "\n    ".join(plan.splitlines()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_SERVER, help="PostgreSQL server")
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument("--releases", type=int, default=5, help="releases per name")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--worker-threads",
        type=int,
        default=1,
        help="threads per gunicorn worker: 1 is sync workers; make run serves with 4 (gthread)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help=f"comma-separated (the ceiling is driven last); known: {', '.join(TARGETS)}",
    )
    parser.add_argument(
        "--variants",
        action="append",
        metavar="NAME[,NAME...]",
        help="a configuration: proposed app changes to patch in ('' for none), on its own "
        "copy of the seeded database and its own gunicorn; repeat it to compare "
        f"configurations in one run. Known: {', '.join(PROPOSALS)}",
    )
    parser.add_argument(
        "--profile", action="store_true", help="afterwards, cProfile one request per target"
    )
    parser.add_argument("--skip-queries", action="store_true", help="no query timing")
    parser.add_argument("--skip-load", action="store_true", help="no HTTP load (queries only)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    if not targets or set(targets) - set(TARGETS):
        parser.error(f"--targets: known targets are {', '.join(TARGETS)}")
    if "ceiling" in targets:  # last in each repeat: every run has a partner to compare with
        targets = [t for t in targets if t != "ceiling"] + ["ceiling"]
    configs = [[v for v in spec.split(",") if v] for spec in (args.variants or [""])]
    for variants in configs:
        unknown = [v for v in variants if v not in PROPOSALS]
        if unknown:
            parser.error(f"unknown variants {unknown}; known: {', '.join(PROPOSALS)}")
    labels = [label_of(v) for v in configs]
    if len(set(labels)) != len(labels):
        parser.error("the same configuration twice")
    if not args.skip_load and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")

    import flask_migrate
    import psycopg

    rng = random.Random(args.seed)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-market-")))
        for folder in ("instance", "store", "cwd", "profiles"):
            (tmp / folder).mkdir()
        base_url = fresh_database(args.database_url, stack)
        app = make_app(base_url, tmp / "store")
        print(f"seeding {args.names} names x {args.releases} releases ...", flush=True)
        with app.app_context():
            flask_migrate.upgrade()
            from portal.extensions import db

            db.session.remove()
            db.engine.dispose()
        seeded = seed(app, args.names, args.releases, rng)
        token = seeded["token"]
        print(f"  {seeded['counts']}", flush=True)

        # Every configuration but the committed one gets its own copy of the seeded
        # database (so none warms another's caches).
        urls = {}
        for label, variants in zip(labels, configs, strict=True):
            urls[label] = base_url
            if variants:
                urls[label] = fresh_database(args.database_url, stack, template=base_url)
                vacuum_analyze(urls[label])

        queries = []
        if not args.skip_queries:
            for label, variants in zip(labels, configs, strict=True):
                print(f"query timing ({label}) ...", flush=True)
                with patched(variants):
                    timing = time_queries(make_app(urls[label], tmp / "store"), variants)
                timing["label"] = label
                queries.append(timing)

        servers: dict[str, Server] = {}
        cookies: dict[str, str] = {}
        breakdown: dict[str, dict] = {}
        runs: dict[str, dict[str, list[dict]]] = {
            label: {t: [] for t in targets} for label in labels
        }
        load_before = load_after = os.getloadavg()[0]
        if not args.skip_load:
            for label, variants in zip(labels, configs, strict=True):
                profile_dir = tmp / "profiles" if args.profile else None
                env = server_env(urls[label], tmp, variants, profile_dir)
                servers[label] = server = Server(
                    env, tmp / "cwd", args.workers, args.worker_threads
                )
                stack.callback(server.stop)
                server.wait_ready()  # one at a time: booting workers compete for the CPUs
            for label, server in servers.items():
                cookies[label] = cookie = sign_in(server.port)
                for target in targets:
                    check_target(server.port, target, cookie, token)
                # Warm-up (untimed): each worker imports, connects and fills its caches.
                for target in targets:
                    paths, headers = target_requests(target, cookie, token)
                    for _ in range(3 * args.workers):
                        for path in paths:
                            get(server.port, path, headers)
                print(f"sequential requests ({label}) ...", flush=True)
                breakdown[label] = {
                    t: sample_breakdown(server.port, t, cookie, token) for t in targets
                }

            scripts = {}
            for label in labels:
                for target in targets:
                    paths, headers = target_requests(target, cookies[label], token)
                    name = f"wrk-{len(scripts)}.lua"
                    scripts[label, target] = wrk_script(tmp / name, paths, headers)
            load_before = os.getloadavg()[0]
            for repeat in range(args.repeats):
                for label, server in servers.items():
                    for target in targets:
                        row = run_wrk(server.port, scripts[label, target], args)
                        drain(server.port)
                        runs[label][target].append(row)
                        print(
                            f"  [{repeat + 1}/{args.repeats}] {label} {target}: "
                            f"{row['rps']:.1f} req/s, p50 {row['p50_ms']:.1f} ms, "
                            f"p99 {row['p99_ms']:.1f} ms, non-200 "
                            f"{row['not_200'] + row['errors']}, load {row['loadavg_1m_before']}",
                            flush=True,
                        )
            load_after = os.getloadavg()[0]
            if args.profile:
                run_profiles(servers, cookies, token, targets, tmp / "profiles")

        with psycopg.connect(base_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            pg_version = conn.execute("SHOW server_version").fetchone()[0]
        result = {
            "benchmark": "marketplace",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": "postgresql",
            "postgresql": pg_version,
            "releases_per_name": args.releases,
            "counts": seeded["counts"],
            "terms": dict(TERMS),
            "targets_driven": targets,
            "duration_s": args.duration,
            "connections": args.connections,
            "threads": args.threads,
            "workers": args.workers,
            "worker_threads": args.worker_threads,
            "repeats": args.repeats,
            "cpus": os.cpu_count(),
            # Other work on the machine skews every figure: the 1-minute load average
            # before and after the load phase (2 CPUs: above 2 means contention).
            "loadavg_1m": [round(load_before, 2), round(load_after, 2)],
            "python": platform.python_version(),
            "gunicorn": metadata.version("gunicorn"),
            "flask": metadata.version("flask"),
            "sqlalchemy": metadata.version("sqlalchemy"),
            "psycopg": metadata.version("psycopg"),
            "wrk": wrk_version() if not args.skip_load else None,
            "targets": {
                "ratio_of_ceiling": TARGET_RATIO,
                "p99_ms": TARGET_P99_MS,
                "query_ms": TARGET_QUERY_MS,
            },
            "queries": queries,
            "configs": {},
        }
        for label, variants in zip(labels, configs, strict=True):
            load = {} if args.skip_load else summarize(runs[label], runs[label].get("ceiling", []))
            own = next((q for q in queries if q["label"] == label), None)
            result["configs"][label] = {
                "variants": variants,
                "breakdown": breakdown.get(label, {}),
                "load": load,
                "verdicts": verdicts(load, own),
            }
    print_summary(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # One entry per set of configurations, so runs are kept side by side.
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    key = "postgresql" if labels == ["committed"] else f"postgresql: {' vs '.join(labels)}"
    results[key] = result
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"  written to {args.out} ({key})")
    return 0


def wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return (out.stdout or out.stderr).splitlines()[0].strip()


def _exit_on_sigterm(signum, _frame) -> None:
    raise SystemExit(128 + signum)  # unwinds the ExitStack: gunicorn, database, temp files


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.exit(main())
