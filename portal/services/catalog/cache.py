"""What is computed from the catalog, kept per process under the catalog's generation.

A search over 10,000 names ranks every match (a common word: thousands of rows, tens of
milliseconds), and the marketplace's filter menus read every latest release; both answer
the same until a release or a company changes. Triggers move `catalog_generation` on
every such write (migration 0009), so a value cached under the generation it was read at
is never served once anything it was computed from has changed, in any process, and
nothing that writes has to remember to invalidate it.

The generation is read before the value is computed, so a value can only be newer than
its key (a change committed in between moves the generation past it): never older.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

import sqlalchemy as sa
from flask import current_app, g, has_request_context
from sqlalchemy.orm import Session

from portal.extensions import db
from portal.models import CatalogGeneration

T = TypeVar("T")
_MISSING = object()


class LruCache:
    """A bounded mapping, least recently used out first; safe across threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> object:
        with self._lock:
            value = self._items.get(key, _MISSING)
            if value is not _MISSING:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: object) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def catalog_generation() -> int | None:
    """The catalog's generation (None without its row: nothing is cached then). Read once
    per request, and again after the request commits a change (it may have moved it)."""
    if has_request_context() and "catalog_generation" in g:
        return g.catalog_generation
    generation = db.session.execute(
        sa.select(CatalogGeneration.generation).where(CatalogGeneration.id == 1)
    ).scalar()
    if has_request_context():
        g.catalog_generation = generation
    return generation


@sa.event.listens_for(Session, "after_commit")
def _forget_generation(_session) -> None:
    if has_request_context():
        g.pop("catalog_generation", None)


def remember(kind: str, key: Hashable, compute: Callable[[], T]) -> T:
    """compute(), or its value for `key` from this catalog generation."""
    cache, generation = _cache_of(kind)
    if cache is None:
        return compute()
    value = cache.get((generation, key))
    if value is _MISSING:
        value = compute()
        cache.put((generation, key), value)
    return value  # type: ignore[return-value]


def remember_each(kind: str, keys: tuple, compute: Callable[[tuple], dict]) -> list:
    """The values of `keys`, in their order: those of this catalog generation from the
    cache, the others from one compute(missing keys) -> {key: value}. A key compute
    leaves out is left out."""
    cache, generation = _cache_of(kind)
    if cache is None:
        found = compute(keys) if keys else {}
    else:
        found = {}
        for key in keys:
            value = cache.get((generation, key))
            if value is not _MISSING:
                found[key] = value
        missing = tuple(k for k in keys if k not in found)
        if missing:
            computed = compute(missing)
            for key, value in computed.items():
                cache.put((generation, key), value)
            found.update(computed)
    return [found[k] for k in keys if k in found]


def _cache_of(kind: str) -> tuple[LruCache | None, int | None]:
    """This process's cache for `kind` and the current generation; (None, None) when
    caching is off (CATALOG_CACHE_ENTRIES is 0) or the generation row is missing."""
    size = current_app.config["CATALOG_CACHE_ENTRIES"]
    if size <= 0:
        return None, None
    generation = catalog_generation()
    if generation is None:
        return None, None
    caches = current_app.extensions.setdefault("catalog_cache", {})
    return caches.get(kind) or caches.setdefault(kind, LruCache(size)), generation
