"""Paging for pages (templates/main/_pager.html draws the links): page numbers read
forgivingly from the URL, and a page that is never past the end of its list."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from portal.services.paging import MAX_PER_PAGE, Page

# Far beyond any list here, and small enough that (page - 1) * per_page stays a 64-bit
# OFFSET on both databases.
MAX_PAGE = 1_000_000


def _whole_number(args: Mapping[str, str], name: str) -> int | None:
    """A positive whole number under `name`, capped at MAX_PAGE; None for anything else.
    ASCII digits only: "²".isdigit() is true, and int("²") raises (so does int() of
    thousands of digits)."""
    raw = (args.get(name) or "").strip()
    if not (raw.isascii() and raw.isdigit()):
        return None
    number = min(int(raw), MAX_PAGE) if len(raw) <= 12 else MAX_PAGE
    return number or None


def page_number(args: Mapping[str, str], name: str = "page") -> int:
    """The page the URL asks for under `name`. A page is forgiving where the API is strict
    (422): anything but a whole number from 1 is page 1, and a huge one is past the end
    (which page_in_range turns into the last page)."""
    return _whole_number(args, name) or 1


def page_size(args: Mapping[str, str], default: int) -> int:
    """`per_page` from the URL, at most MAX_PER_PAGE as in the API; anything else, `default`."""
    return min(_whole_number(args, "per_page") or default, MAX_PER_PAGE)


def page_in_range(fetch: Callable[[int], Page], page: int) -> Page:
    """`fetch(page)`, or the last page when `page` is past it (a stale link, or a list
    that shrank meanwhile): one more query, and only then."""
    found = fetch(page)
    if found.page > found.pages:
        found = fetch(found.pages)
    return found
