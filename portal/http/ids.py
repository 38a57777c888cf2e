"""Ids in URLs: `<int:...>` matches only what an id column can hold, so an id past 32 bits
is a 404 like any other absent id, not a database error."""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

MAX_ID = 2**31 - 1  # PostgreSQL `integer`, the type of every id column


class DatabaseId(IntegerConverter):
    """Flask's `int` converter bounded to the ids a row can have."""

    def __init__(self, map, fixed_digits=0, min=None, max=None, signed=False):  # noqa: A002
        super().__init__(map, fixed_digits, min, MAX_ID if max is None else max, signed)
