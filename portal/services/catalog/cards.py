"""What the marketplace, module and activity pages show: cards, filter choices, a module's
configuration table. Read-only helpers on top of catalog.list_releases and the event log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from portal.events import EVENT_TYPES
from portal.extensions import db
from portal.lib.config_schema import MAX_SCHEMA_DEPTH, secret_fields
from portal.lib.json_errors import join_pointer, unescape_pointer
from portal.models import Company, Event, Installation, InstallationStatus, ModuleRelease, User
from portal.services.accounts.access import is_admin
from portal.services.catalog import cache
from portal.services.catalog import queries as catalog
from portal.services.errors import NotFound
from portal.services.paging import Page

# (value, label): the marketplace's sort menu; "" is relevance with a query, else by name.
SORT_CHOICES = (("", "Best match"), ("name", "Name"), ("-created_at", "Recently updated"))
MAX_QUERY_LENGTH = 1000
MAX_CHOICES = 200
MAX_CONFIG_ROWS = 500


@dataclass
class MarketFilters:
    """The marketplace's state, as the URL carries it."""

    q: str = ""
    category: str = ""
    tag: str = ""
    publisher: str = ""
    sort: str = ""

    def as_args(self) -> dict[str, str]:
        """The non-empty filters, for links that keep the state."""
        return {k: v for k, v in vars(self).items() if v}


def clean_arg(value: str | None, limit: int = 64) -> str:
    """A filter value from a URL, trimmed; NUL characters dropped (PostgreSQL text cannot
    hold them: a filter passing one on would fail the query instead of matching nothing)."""
    return (value or "").replace("\x00", "").strip()[:limit]


def market_filters(args) -> MarketFilters:
    """Filters from the query string; unknown sort values fall back to the default."""
    values = {key: clean_arg(args.get(key)) for key in ("category", "tag", "publisher")}
    sort = args.get("sort") or ""
    return MarketFilters(
        q=clean_arg(args.get("q"), MAX_QUERY_LENGTH),
        sort=sort if sort in dict(SORT_CHOICES) else "",
        **values,
    )


@dataclass(frozen=True)
class Card:
    """What a marketplace card shows of a module's latest release."""

    id: int
    name: str
    display_name: str | None
    version: str
    description: str
    visibility: str
    publisher_name: str
    category: str | None
    tags: tuple[str, ...]

    @classmethod
    def of(cls, release: ModuleRelease) -> Card:
        return cls(
            id=release.id,
            name=release.name,
            display_name=release.display_name,
            version=release.version,
            description=release.description,
            visibility=release.visibility,
            publisher_name=release.publisher.name,
            category=release.category,
            tags=tuple(release.tags or ()),
        )


# A card needs neither dependencies nor the manifest and scan report JSON; raiseload
# makes Card.of fail in the tests if it starts reading them.
CARDS = catalog.Presentation(
    "card",
    Card.of,
    (
        orm.raiseload(ModuleRelease.dependencies),
        orm.defer(ModuleRelease.manifest, raiseload=True),
        orm.defer(ModuleRelease.scan_report, raiseload=True),
    ),
)


def search_cards(filters: MarketFilters, *, actor: User, page: int, per_page: int) -> Page:
    """One card per module name: its latest approved release the actor may see
    (catalog.list_releases with latest=True), filtered and sorted."""
    return catalog.list_releases(
        present=CARDS,
        actor=actor,
        page=page,
        per_page=per_page,
        q=filters.q or None,
        category=filters.category or None,
        tag=filters.tag or None,
        publisher=filters.publisher or None,
        sort=filters.sort or None,
        latest=True,
    )


def usage_counts(names: list[str]) -> dict[str, int]:
    """How many companies use each module name (active installations): one grouped
    statement for the whole page, never one per card."""
    counts = dict.fromkeys(names, 0)
    if not names:
        return counts
    rows = db.session.execute(
        sa.select(Installation.module_name, sa.func.count(sa.distinct(Installation.company_id)))
        .where(
            Installation.module_name.in_(set(names)),
            Installation.status == InstallationStatus.INSTALLED,
        )
        .group_by(Installation.module_name)
    ).all()
    counts.update({name: used for name, used in rows})
    return counts


def _latest_visible(actor: User) -> sa.ColumnElement:
    return sa.and_(ModuleRelease.is_latest, catalog.visibility_clause(actor))


def filter_choices(*, actor: User) -> dict[str, list]:
    """Categories, tags and publishers of the modules in the actor's marketplace, as
    (value, label) pairs, at most MAX_CHOICES each. They take a pass over every latest
    release and change only with the catalog: kept per visibility scope and catalog
    generation."""
    return cache.remember(
        "filter-choices",
        catalog.visibility_scope(actor),
        lambda: _compute_filter_choices(actor),
    )


def _compute_filter_choices(actor: User) -> dict[str, list]:
    # One statement, one pass over the visible latest releases (a CTE used three times
    # is materialized once): three separate DISTINCTs read every latest row three times
    # (bench/README.md, "Marketplace load").
    visible = (
        sa.select(ModuleRelease.category, ModuleRelease.publisher_id, ModuleRelease.tags)
        .where(_latest_visible(actor))
        .cte("visible")
    )
    none = sa.null().cast(sa.String)
    categories = sa.select(sa.literal("category"), visible.c.category, none).where(
        visible.c.category.is_not(None), visible.c.category != ""
    )
    publishers = sa.select(sa.literal("publisher"), Company.slug, Company.name).join(
        visible, visible.c.publisher_id == Company.id
    )
    each = _each_tag(visible.c.tags)
    tags = (
        sa.select(sa.literal("tag"), each.c.value, none).select_from(visible).join(each, sa.true())
    )
    rows = db.session.execute(
        sa.union(categories.distinct(), publishers.distinct(), tags.distinct())
    ).all()
    choices: dict[str, list] = {"categories": [], "tags": [], "publishers": []}
    menus = {"category": "categories", "tag": "tags", "publisher": "publishers"}
    for kind, value, label in rows:
        choices[menus[kind]].append((value, label or value))
    for pairs in choices.values():
        pairs.sort(key=lambda pair: (pair[1].casefold(), pair[1], pair[0]))
        del pairs[MAX_CHOICES:]
    return choices


def _each_tag(tags: sa.ColumnElement):
    """The tags of a row as a table: jsonb_array_elements_text on PostgreSQL (only for
    arrays: it fails on anything else), json_each on SQLite."""
    if db.session.get_bind().dialect.name == "postgresql":
        array = sa.case((sa.func.jsonb_typeof(tags) == "array", tags), else_=sa.text("'[]'::jsonb"))
        return sa.func.jsonb_array_elements_text(array).table_valued("value")
    return sa.func.json_each(tags).table_valued("value")


# --- A module's page ------------------------------------------------------------------------


def default_release(releases: list[ModuleRelease]) -> ModuleRelease:
    """The release a module page opens on: the latest approved one, else the newest shown."""
    return next((r for r in releases if r.is_latest), releases[0])


def release_by_version(name: str, version: str, *, actor: User) -> ModuleRelease:
    """One release of a name by its exact version, if the actor may see it. Raises NotFound."""
    release = db.session.execute(
        sa.select(ModuleRelease).where(
            ModuleRelease.name == name,
            ModuleRelease.version == version,
            catalog.visibility_clause(actor),
        )
    ).scalar()
    if release is None:
        raise NotFound("No such module.")
    return release


@dataclass
class ConfigField:
    name: str  # dotted path: "database.password"
    type: str
    required: bool
    description: str
    secret: bool
    default: Any = None


def config_fields(schema: Any) -> list[ConfigField]:
    """The configuration a release expects, one row per field by name: nested objects
    flattened with dotted names, local $refs followed, secrets (writeOnly or format:
    password) marked."""
    if not isinstance(schema, dict):
        return []
    secrets = secret_fields(schema)
    rows: list[ConfigField] = []
    # (node, dotted name, JSON pointer, required, depth), walked without recursion.
    stack: list[tuple[Any, str, str, bool, int]] = []
    _push_properties(stack, _resolve(schema, schema), "", "", True, 0)
    while stack and len(rows) < MAX_CONFIG_ROWS:
        node, name, pointer, required, depth = stack.pop()
        node = _resolve(schema, node)
        nested = _properties(node)
        rows.append(
            ConfigField(
                name=name,
                type=_type_of(schema, node),
                required=required,
                description=str(node.get("description") or node.get("title") or ""),
                secret=pointer in secrets,
                default=node.get("default"),
            )
        )
        if nested and depth < MAX_SCHEMA_DEPTH:
            _push_properties(stack, node, name + ".", pointer, required, depth + 1)
    return rows


def _push_properties(stack, node: dict, prefix: str, pointer: str, parent_required: bool, depth):
    required = node.get("required") if isinstance(node.get("required"), list) else []
    # In the manifest's order (stored as json, which keeps it), reversed so that popping
    # the stack yields the first field first.
    for key, sub in reversed(list(_properties(node).items())):
        stack.append(
            (
                sub,
                prefix + str(key),
                join_pointer(pointer, key),
                parent_required and key in required,
                depth,
            )
        )


def _properties(node: Any) -> dict:
    props = node.get("properties") if isinstance(node, dict) else None
    return props if isinstance(props, dict) else {}


def _resolve(root: dict, node: Any, hops: int = 8) -> dict:
    """Follow local `$ref`s (`#/$defs/...`) a few hops; anything else as it is."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and hops:
        ref = node["$ref"]
        if not ref.startswith("#"):
            break
        target: Any = root
        for token in ref[1:].split("/")[1:]:
            target = target.get(unescape_pointer(token)) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            break
        node, hops = {**target, **{k: v for k, v in node.items() if k != "$ref"}}, hops - 1
    return node if isinstance(node, dict) else {}


def _type_of(root: dict, node: dict) -> str:
    kind = node.get("type")
    text = " or ".join(map(str, kind)) if isinstance(kind, list) else str(kind or "any")
    if kind == "array" and isinstance(node.get("items"), dict):
        item = _resolve(root, node["items"]).get("type")
        if isinstance(item, str):
            text = f"array of {item}"
    if isinstance(node.get("enum"), list):
        text += " (one of " + ", ".join(map(str, node["enum"][:20])) + ")"
    elif isinstance(node.get("format"), str) and node["format"] != "password":
        text += f" ({node['format']})"
    return text


# --- The activity page ----------------------------------------------------------------------


def activity_choices(*, actor: User) -> dict[str, list[str]]:
    """Filter choices of the activity page: event types, and the modules and companies
    named in the events the actor may see (admins: all)."""
    scope = sa.true()
    if not is_admin(actor):
        scope = Event.company == (actor.company.slug if actor.company else "")
    modules = db.session.execute(
        sa.select(Event.module)
        .where(scope, Event.module != "")
        .distinct()
        .order_by(Event.module)
        .limit(MAX_CHOICES)
    ).scalars()
    companies: list[str] = []
    if is_admin(actor):
        companies = list(
            db.session.execute(
                sa.select(Company.slug).order_by(Company.slug).limit(MAX_CHOICES)
            ).scalars()
        )
    return {"types": list(EVENT_TYPES), "modules": list(modules), "companies": companies}
