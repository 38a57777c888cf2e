"""Paging for pages (templates/main/_pager.html draws the links): page numbers read
forgivingly from the URL, and a page that is never past the end of its list."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from portal.services.paging import MAX_PAGE, MAX_PER_PAGE, Page, whole_number


def _whole_number(args: Mapping[str, str], name: str) -> int | None:
    """A positive whole number under `name`, capped at MAX_PAGE; None for anything else."""
    raw = (args.get(name) or "").strip()
    if len(raw) > 18 and raw.isascii() and raw.isdigit():
        return MAX_PAGE
    number = whole_number(raw)
    return min(number, MAX_PAGE) if number else None


def page_number(args: Mapping[str, str], name: str = "page") -> int:
    """The page the URL asks for under `name`. A page is forgiving where the API is strict
    (422): anything but a whole number from 1 is page 1, and a huge one is past the end
    (which page_in_range turns into the last page)."""
    return _whole_number(args, name) or 1


def page_size(args: Mapping[str, str], default: int) -> int:
    """`per_page` from the URL, at most MAX_PER_PAGE as in the API; anything else, `default`."""
    return min(_whole_number(args, "per_page") or default, MAX_PER_PAGE)


def page_args(args: Mapping[str, str], default_per_page: int = 20) -> tuple[int, int]:
    """(page, per_page) from the URL, forgivingly (see page_number and page_size)."""
    return page_number(args), page_size(args, default_per_page)


def page_in_range(fetch: Callable[[int], Page], page: int) -> Page:
    """`fetch(page)`, or the last page when `page` is past it (a stale link, or a list
    that shrank meanwhile): one more query, and only then."""
    found = fetch(page)
    if found.page > found.pages:
        found = fetch(found.pages)
    return found
