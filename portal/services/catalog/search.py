"""Full-text search over releases: one function behind the marketplace and the API.

PostgreSQL: a stored weighted tsvector (name and display name A, tags B, description C)
behind GIN indexes, prefix matching for search-as-you-type, plus trigram similarity on
names (pg_trgm) so a misspelled name still finds its module. SQLite: LIKE over the same
fields, ranked name-first: the same shape of result, without typo tolerance.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from portal.models import ModuleRelease
from portal.models.modules import SEARCH_VECTOR

MAX_TERMS = 8
MAX_TERM_LENGTH = 64
_TERM = re.compile(r"[^\W_]+", re.UNICODE)


def search_terms(text: str) -> list[str]:
    """Words of the query, lowercased: letters and digits only, so nothing a user types
    can become tsquery or LIKE syntax (quotes, &, |, !, :*, %, _ and backslashes drop out)."""
    words = _TERM.findall((text or "").lower())
    return [w[:MAX_TERM_LENGTH] for w in words[:MAX_TERMS]]


def apply_search(query: sa.Select, terms: tuple[str, ...], dialect: str) -> sa.Select:
    """Narrow and rank `query` by the search terms (see search_terms; unchanged when
    there are none)."""
    if not terms:
        return query
    if dialect == "postgresql":
        return _postgres(query, list(terms), " ".join(terms))
    return _sqlite(query, list(terms))


def _postgres(query: sa.Select, terms: list[str], phrase: str) -> sa.Select:
    tsquery = sa.func.to_tsquery(
        sa.literal_column("'simple'::regconfig"), " & ".join(f"{t}:*" for t in terms)
    )
    matches = SEARCH_VECTOR.op("@@")(tsquery)
    similar = ModuleRelease.name.op("%")(phrase)
    # Full-text matches rank by ts_rank (a name or display name hit weighs most); the
    # name similarity is computed only for the typo matches full text misses, not for the
    # thousands of rows a common word matches. Ties go to the shorter name, then by name
    # and id, so that pages of equal ranks never repeat or skip a row.
    rank = sa.func.ts_rank(SEARCH_VECTOR, tsquery) + sa.case(
        (matches, 0.0), else_=sa.func.similarity(ModuleRelease.name, phrase)
    )
    return (
        query.where(sa.or_(matches, similar))
        .order_by(None)
        .order_by(
            rank.desc(), sa.func.length(ModuleRelease.name), ModuleRelease.name, ModuleRelease.id
        )
    )


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _sqlite(query: sa.Select, terms: list[str]) -> sa.Select:
    fields = (
        ModuleRelease.name,
        sa.func.coalesce(ModuleRelease.display_name, ""),
        sa.func.coalesce(sa.cast(ModuleRelease.tags, sa.Text), ""),
        ModuleRelease.description,
    )
    for term in terms:
        pattern = _like(term)
        query = query.where(sa.or_(*(f.ilike(pattern, escape="\\") for f in fields)))
    first = _like(terms[0])
    name_hit = sa.case((ModuleRelease.name.ilike(first, escape="\\"), 0), else_=1)
    return query.order_by(None).order_by(name_hit, ModuleRelease.name, ModuleRelease.id)
