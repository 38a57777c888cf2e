"""Ids in URLs: an `<int:...>` value past what an id column can hold names no row, so it is
a 404 like any other absent id, on pages and in the API alike, never a database error.

Checked after routing rather than by bounding the converter: a converter that refuses a
value makes Werkzeug look for another rule, and it answered 405 for a path whose other
methods exist."""

from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import NotFound

MAX_ID = 2**31 - 1  # PostgreSQL `integer`, the type of every id column


def register(app: Flask) -> None:
    @app.url_value_preprocessor
    def ids_in_range(_endpoint, values) -> None:
        for value in (values or {}).values():
            if isinstance(value, int) and not isinstance(value, bool) and value > MAX_ID:
                raise NotFound("No such resource.")
