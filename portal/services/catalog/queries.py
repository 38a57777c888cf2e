"""Reading releases: who may see which, lists with filters, and single releases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from portal.extensions import db
from portal.models import RELEASED, Company, ModuleRelease, ReleaseStatus, User, Visibility
from portal.services.accounts.access import is_admin
from portal.services.catalog import cache
from portal.services.catalog.search import apply_search, search_terms
from portal.services.errors import NotFound, ValidationFailed
from portal.services.paging import Page, load_by_keys, paged_keys, ranked_keys

SORTS = {
    "name": (ModuleRelease.name, ModuleRelease.version_key.desc()),
    "-created_at": (ModuleRelease.created_at.desc(), ModuleRelease.id.desc()),
    "-version": (ModuleRelease.version_key.desc(), ModuleRelease.name),
}


# A release a company may install: approved, or deprecated (then only when asked for by
# exact version: the resolver's rule), and public or published by the company itself.
INSTALLABLE_STATUSES = RELEASED


def installable_clause(company_id: int | None, *, statuses: tuple = INSTALLABLE_STATUSES):
    """Releases the company may install (SQL). `statuses` widens it for a question asked
    before a decision (the review report counts pending releases as coming)."""
    reachable = ModuleRelease.visibility == Visibility.PUBLIC
    if company_id is not None:
        reachable = sa.or_(reachable, ModuleRelease.publisher_id == company_id)
    return sa.and_(ModuleRelease.status.in_(statuses), reachable)


def is_installable(release, company_id: int | None) -> bool:
    """installable_clause for a row already read (anything with `status`, `visibility` and
    `publisher_id`), for readers that select by name alone to keep the name index."""
    return release.status in INSTALLABLE_STATUSES and (
        release.visibility == Visibility.PUBLIC
        or (company_id is not None and release.publisher_id == company_id)
    )


def visibility_clause(actor: User):
    """Rows the actor may see: admins everything but deleted; others what their company may
    install, plus every live release of their own company."""
    live = ModuleRelease.status != ReleaseStatus.DELETED
    if is_admin(actor):
        return live
    shared = installable_clause(None)
    if actor.company_id is None:
        return shared
    return sa.or_(shared, sa.and_(live, ModuleRelease.publisher_id == actor.company_id))


def visibility_scope(actor: User) -> tuple[bool, int | None]:
    """What visibility_clause depends on: whatever is cached per actor is cached per this."""
    return is_admin(actor), actor.company_id


def get_release(release_id: int, *, actor: User) -> ModuleRelease:
    """A release the actor may see. Raises NotFound (also for others' private ones)."""
    release = db.session.execute(
        sa.select(ModuleRelease).where(ModuleRelease.id == release_id, visibility_clause(actor))
    ).scalar()
    if release is None:
        raise NotFound("No such module.")
    return release


@dataclass(frozen=True)
class Presentation:
    """How a list hands out its releases: `render(release)` of each (kept per catalog
    generation under `kind`, so it must not depend on the request), loaded with the ORM
    loader `options`. The renderings are shared: callers must not change them."""

    kind: str
    render: Callable[[ModuleRelease], Any]
    options: tuple = ()


def list_releases(*, actor: User, page: int, per_page: int, present: Presentation, **filters):
    """One page of the releases the actor may see, filtered (see release_keys), each
    rendered by `present`. Raises ValidationFailed for unknown filter values."""
    keys, total = release_keys(actor=actor, page=page, per_page=per_page, **filters)

    def render_missing(missing: tuple) -> dict:
        rows = load_by_keys(ModuleRelease.id, missing, present.options)
        return {row.id: present.render(row) for row in rows}

    items = cache.remember_each(present.kind, keys, render_missing)
    return Page(items=items, page=page, per_page=per_page, total=total)


def release_keys(
    *,
    actor: User,
    page: int,
    per_page: int,
    name: str | None = None,
    status: str | None = None,
    visibility: str | None = None,
    publisher: str | None = None,
    category: str | None = None,
    tag: str | None = None,
    sort: str | None = None,
    q: str | None = None,
    latest: str | bool | None = None,
) -> tuple[tuple[int, ...], int]:
    """(The ids of one page of releases the actor may see, filtered; the total), kept
    per catalog generation for the actor's visibility scope and these exact filters:
    ranking a common word's matches is the costly part of a search. Raises
    ValidationFailed for unknown values."""
    errors = []
    if status and not ReleaseStatus.has(status):
        allowed = ", ".join(ReleaseStatus)
        errors.append({"pointer": "/status", "message": f"must be one of {allowed}"})
    if visibility and not Visibility.has(visibility):
        errors.append({"pointer": "/visibility", "message": "must be public or private"})
    if isinstance(latest, str):
        if latest.lower() not in ("true", "false", "1", "0"):
            errors.append({"pointer": "/latest", "message": "must be true or false"})
        latest = latest.lower() in ("true", "1")
    if sort and sort not in SORTS:
        errors.append({"pointer": "/sort", "message": f"must be one of {', '.join(SORTS)}"})
    if errors:
        raise ValidationFailed("Invalid filter.", errors=errors)
    terms = tuple(search_terms(q or ""))
    filters = (name, status, visibility, publisher, category, tag, sort, bool(latest), terms)
    cache_key = (visibility_scope(actor), page, per_page, filters)
    return cache.remember(
        "release-keys",
        cache_key,
        lambda: _page_keys(actor, page, per_page, *filters),
    )


def _page_keys(
    actor, page, per_page, name, status, visibility, publisher, category, tag, sort, latest, terms
) -> tuple[tuple[int, ...], int]:
    query = sa.select(ModuleRelease)
    if status == ReleaseStatus.DELETED and is_admin(actor):
        query = query.where(ModuleRelease.status == ReleaseStatus.DELETED)
    else:
        query = query.where(visibility_clause(actor))
        # Deprecated releases are listed only when asked for (status=deprecated).
        query = query.where(
            ModuleRelease.status == status
            if status
            else ModuleRelease.status != ReleaseStatus.DEPRECATED
        )
    if terms and status:  # deprecated releases are never search results (api.md)
        query = query.where(ModuleRelease.status != ReleaseStatus.DEPRECATED)
    if name:
        query = query.where(ModuleRelease.name == name)
    if visibility:
        query = query.where(ModuleRelease.visibility == visibility)
    if publisher:
        query = query.join(Company, ModuleRelease.publisher_id == Company.id).where(
            Company.slug == publisher
        )
    if category:
        query = query.where(ModuleRelease.category == category)
    if tag:
        query = query.where(_has_tag(tag))
    if latest:
        query = query.where(ModuleRelease.is_latest)
    if not terms:
        query = query.order_by(*SORTS[sort or "name"], ModuleRelease.id)
        return paged_keys(query, page, per_page, ModuleRelease.id)
    query = apply_search(query, terms, db.session.get_bind().dialect.name)
    if sort:  # ranked by relevance unless sorted
        query = query.order_by(None).order_by(*SORTS[sort], ModuleRelease.id)
    return ranked_keys(query, page, per_page, ModuleRelease.id)


def _has_tag(tag: str):
    """Tags are a JSON list: JSONB containment on PostgreSQL, json_each on SQLite."""
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        return ModuleRelease.tags.op("@>")(sa.func.jsonb_build_array(tag))
    each = sa.func.json_each(ModuleRelease.tags).table_valued("value")
    return sa.exists(sa.select(1).select_from(each).where(each.c.value == tag))


def releases_of_company(company_id: int) -> list[ModuleRelease]:
    """Every live release a company published, newest first (the developer's list)."""
    return list(
        db.session.execute(
            sa.select(ModuleRelease)
            .where(
                ModuleRelease.publisher_id == company_id,
                ModuleRelease.status != ReleaseStatus.DELETED,
            )
            .order_by(ModuleRelease.name, ModuleRelease.version_key.desc())
        ).scalars()
    )


def name_owner(name: str) -> int | None:
    """The publisher company of a name's first release (deleted ones count)."""
    return db.session.execute(
        sa.select(ModuleRelease.publisher_id)
        .where(ModuleRelease.name == name)
        .order_by(ModuleRelease.id)
        .limit(1)
    ).scalar()


def releases_named(name: str, *, actor: User) -> list[ModuleRelease]:
    """Every release of a name the actor may see, newest version first."""
    return list(
        db.session.execute(
            sa.select(ModuleRelease)
            .where(ModuleRelease.name == name, visibility_clause(actor))
            .order_by(ModuleRelease.version_key.desc())
        ).scalars()
    )
