"""The synthetic catalog bench/marketplace.py searches: 10,000 realistic module names x 5
releases, bulk-loaded with COPY.

Names, display names, descriptions and tags come from word lists; `version_key` from
portal.lib.versions, `name_fold` from portal.services.catalog.names, and `is_latest` marks
the newest stable release of each name (checked against the rule refresh_latest applies).
A fifth of the names have a newer pre-release, a third depend on 1-2 other names, and 41
companies have 25 installations each, so the cards' usage counts are real. Then VACUUM
ANALYZE: a bulk load without it leaves the GIN pending list full, and the planner
(rightly) prices a scan of it above a sequential scan.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bench import harness
from portal.extensions import db
from portal.lib.versions import Version
from portal.models import Company, User
from portal.services.accounts import users
from portal.services.catalog.names import fold_name

BROWSER = "admin@customer.bench"
PASSWORD = "bench-" + "password-1"


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


def seed(names: int, releases: int, rng: random.Random) -> dict:
    """Bulk-load the registry (in the app context); returns the browsing company admin's
    API token and the counts."""
    started = time.perf_counter()
    customer = users.create_company("customer", "Customer Bench Ltd")
    user = users.create_user(BROWSER, PASSWORD, "company_admin", "customer")
    _token, token = users.create_api_token(user, "marketplace benchmark")
    customer_id = customer.id
    db.session.remove()
    all_names = module_names(names, rng)
    with db.engine.begin() as conn:
        publishers = create_publishers(conn)
        customers = [customer_id] + _insert_ids(
            conn,
            Company,
            [{"slug": f"customer-{i:02d}", "name": f"Customer {i:02d}"} for i in range(40)],
        )
        rows, deps_of = release_rows(all_names, releases, publishers, rng)
        copy_rows(conn, "modules", rows)
        deps = dependency_rows(conn, rows, deps_of)
        installs = installation_rows(conn, customers, all_names, rng)
    loaded = time.perf_counter()
    check_latest_and_analyze()
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
            "publishers": len(publishers),
            "load_s": round(loaded - started, 1),
            "vacuum_analyze_s": round(time.perf_counter() - loaded, 1),
        },
    }


def _insert_ids(conn, model, rows: list[dict]) -> list[int]:
    statement = sa.insert(model).returning(model.id, sort_by_parameter_order=True)
    return list(conn.execute(statement, rows).scalars())


def create_publishers(conn) -> list[tuple[int, int]]:
    """25 publishing companies with a developer each: (company id, owner id)."""
    companies = _insert_ids(
        conn,
        Company,
        [{"slug": f"publisher-{i:02d}", "name": f"{AUTHORS[i % 5]} {i:02d}"} for i in range(25)],
    )
    owners = _insert_ids(
        conn,
        User,
        [
            {
                "email": f"dev{i:02d}@publisher.bench",
                "role": "developer",
                "company_id": cid,
                "password_hash": None,
            }
            for i, cid in enumerate(companies)
        ],
    )
    return list(zip(companies, owners, strict=True))


def release_rows(all_names: list[str], releases: int, publishers: list, rng: random.Random):
    """The modules rows, and each row's dependencies (deps_of[i] for rows[i])."""
    now = datetime.now(UTC)
    rows, deps_of = [], []
    for n, name in enumerate(all_names):
        p = n % len(publishers)
        category, tags = rng.choice(CATEGORIES), rng.sample(TAGS, rng.randint(1, 4))
        common = {
            "name": name,
            "name_fold": fold_name(name),
            "display_name": " ".join(
                w.upper() if len(w) <= 3 else w.capitalize() for w in name.split("-")
            ),
            "description": describe(name, rng),
            "author": AUTHORS[p % 5],
            "category": category,
            "tags": tags,
            "status": "approved",
            "visibility": "public",
            "publisher_id": publishers[p][0],
            "owner_id": publishers[p][1],
        }
        born = now - timedelta(days=rng.randrange(60, 730))
        versions = versions_of(rng, releases)
        parsed = [Version.parse(v) for v in versions]
        # api.md's latest: the newest by precedence, a stable release preferred.
        best = max(
            range(len(versions)), key=lambda i: (not parsed[i].is_prerelease, parsed[i].sort_key())
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
            manifest = {"name": name, "version": version}
            for key in ("display_name", "description", "author", "category", "tags"):
                manifest[key] = common[key]
            manifest["dependencies"] = own
            deps_of.append(own)
            rows.append(
                common
                | {
                    "version": version,
                    "version_key": parsed[i].sort_key(),
                    "prerelease": parsed[i].is_prerelease,
                    "is_latest": i == best,
                    "manifest": manifest,
                    "created_at": created,
                    "updated_at": created,
                }
            )
    return rows, deps_of


def dependency_rows(conn, rows: list[dict], deps_of: list[list[dict]]) -> list[dict]:
    """The module_dependencies rows of the loaded releases, copied in."""
    id_of = {
        (name, version): mid
        for mid, name, version in conn.execute(sa.text("SELECT id, name, version FROM modules"))
    }
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
    return deps


def installation_rows(conn, customers: list[int], all_names: list[str], rng) -> list[dict]:
    """Each company uses 25 of the 600 most popular names (copied in)."""
    latest_id = dict(conn.execute(sa.text("SELECT name, id FROM modules WHERE is_latest")).all())
    now = datetime.now(UTC)
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
        for cid in customers
        for name in rng.sample(all_names[:600], 25)
    ]
    copy_rows(conn, "installations", installs)
    return installs


def check_latest_and_analyze() -> None:
    """The is_latest flag agrees with the rule refresh_latest applies (one DISTINCT ON per
    name); then fresh statistics."""
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
    harness.vacuum_analyze()
