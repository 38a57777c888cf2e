"""Paging of lists, as api.md defines it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from portal.extensions import db
from portal.services.errors import ValidationFailed

MAX_PER_PAGE = 100
# Far beyond any list here, and small enough that (page - 1) * per_page stays a 64-bit
# OFFSET on both databases.
MAX_PAGE = 1_000_000


@dataclass
class Page:
    items: list
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def whole_number(raw: object) -> int | None:
    """A positive whole number written in ASCII digits, else None. ("²".isdigit() is true
    and int("²") raises; so does int() of thousands of digits.)"""
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text) or None


def parse_paging(args: Mapping[str, str], default_per_page: int = 20) -> tuple[int, int]:
    """(page, per_page) from the query; per_page is clamped to 100, page may be at most
    MAX_PAGE. Raises ValidationFailed."""
    errors = []
    values = {}
    for key, default in (("page", 1), ("per_page", default_per_page)):
        given = args.getlist(key) if hasattr(args, "getlist") else [args.get(key)]
        given = [raw for raw in given if raw is not None]
        if not given:
            values[key] = default
            continue
        number = whole_number(given[0])
        if len(given) > 1:
            errors.append({"pointer": f"/{key}", "message": "must be given once"})
        elif number is None:
            errors.append({"pointer": f"/{key}", "message": "must be a positive integer"})
        elif key == "page" and number > MAX_PAGE:
            errors.append({"pointer": "/page", "message": f"must be at most {MAX_PAGE}"})
        else:
            values[key] = number
    if errors:
        raise ValidationFailed("Invalid paging.", errors=errors)
    return values["page"], min(values["per_page"], MAX_PER_PAGE)


def paginate(query: sa.Select, page: int, per_page: int) -> Page:
    """Run a select for one page, plus one COUNT over the same filters."""
    total = db.session.execute(
        sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
    ).scalar_one()
    items = list(db.session.execute(query.limit(per_page).offset((page - 1) * per_page)).scalars())
    return Page(items=items, page=page, per_page=per_page, total=total)


def ranked_keys(query: sa.Select, page: int, per_page: int, key: sa.Column) -> tuple[tuple, int]:
    """A ranked search's page as (its rows' keys, the total), in one pass over the
    matches: count(*) OVER () beside the keys. COUNT + page would find, fetch and filter
    every match twice, and a common word matches thousands of rows."""
    rows = db.session.execute(
        query.with_only_columns(key, sa.func.count().over())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    if rows:
        return tuple(row[0] for row in rows), rows[0][1]
    # No matches, or past the last page: the total still has to be counted.
    total = db.session.execute(
        sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
    ).scalar_one()
    return (), total


def paged_keys(query: sa.Select, page: int, per_page: int, key: sa.Column) -> tuple[tuple, int]:
    """A list's page as (its rows' keys, the total): a COUNT over the filters, and the
    keys of the page, which can stop early in index order."""
    total = db.session.execute(
        sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
    ).scalar_one()
    keys = db.session.execute(
        query.with_only_columns(key).limit(per_page).offset((page - 1) * per_page)
    ).scalars()
    return tuple(keys), total


def load_by_keys(key: sa.Column, keys: tuple, options: tuple = ()) -> list:
    """The rows of `key`'s entity with these keys, in the keys' order (missing ones
    left out), loaded with the ORM loader `options`."""
    if not keys:
        return []
    found = {
        getattr(item, key.key): item
        for item in db.session.execute(
            sa.select(key.class_).where(key.in_(keys)).options(*options)
        ).scalars()
    }
    return [found[k] for k in keys if k in found]
