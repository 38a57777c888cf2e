"""The sign-in throttle: growing delays after failed sign-ins, per account, per client
address and per (account, address) pair, never a hard lock of the owner (OWASP's
authentication guidance).

Each key allows some free failures, then every further attempt waits a delay that doubles
with each failure, up to a cap:

| key | free failures | delay cap | against |
| --- | --- | --- | --- |
| account + address | 5 | 15 min | one guesser, one account |
| address | 20 | 15 min | one guesser, many accounts |
| account | 10 | 1 min | many addresses, one account (the owner is slowed, never locked out) |

An attempt is counted *before* its password is checked, in one transaction holding the
keys' rows (FOR UPDATE on PostgreSQL, the write lock on SQLite), so concurrent guesses
queue on the counter and can never exceed the free allowance; a success gives its attempt
back. Counts older than the window are forgotten. The state is in the database, so every
web process shares it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from portal.extensions import db
from portal.models import SignInThrottle
from portal.models.base import utcnow
from portal.services.errors import TooManyRequests
from portal.services.uow import unit_of_work

WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class Rule:
    free: int
    cap: timedelta


PAIR = Rule(free=5, cap=timedelta(minutes=15))
ADDRESS = Rule(free=20, cap=timedelta(minutes=15))
ACCOUNT = Rule(free=10, cap=timedelta(minutes=1))


def _keys(email: str, address: str | None) -> dict[str, Rule]:
    keys = {f"account:{email}": ACCOUNT}
    if address:
        keys[f"address:{address}"] = ADDRESS
        keys[f"pair:{address}|{email}"] = PAIR
    return keys


def _delay(rule: Rule, failures: int) -> timedelta:
    """How long the next attempt waits once `failures` are counted (none while free)."""
    if failures < rule.free:
        return timedelta(0)
    return min(rule.cap, timedelta(seconds=2 ** min(failures - rule.free, 20)))


def _rows(keys: list[str]) -> dict[str, SignInThrottle]:
    """The keys' rows, created when missing, locked until the transaction ends (in key
    order, so two attempts never wait on each other crosswise)."""
    keys = sorted(keys)
    now = utcnow()
    query = (
        sa.select(SignInThrottle)
        .where(SignInThrottle.key.in_(keys))
        .order_by(SignInThrottle.key)
        .execution_options(populate_existing=True)
    )
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            postgresql.insert(SignInThrottle).on_conflict_do_nothing(index_elements=["key"]),
            [{"key": key, "failures": 0, "updated_at": now} for key in keys],
        )
        query = query.with_for_update()
    else:  # SQLite: the unit of work holds the database's write lock already
        existing = set(db.session.execute(query).scalars())
        for key in set(keys) - {row.key for row in existing}:
            db.session.add(SignInThrottle(key=key, failures=0, updated_at=now))
        db.session.flush()
    return {row.key: row for row in db.session.execute(query).scalars()}


def _wait(row: SignInThrottle, now: datetime) -> float:
    if row.next_allowed_at is None or row.updated_at < now - WINDOW:
        return 0.0
    return max(0.0, (row.next_allowed_at - now).total_seconds())


def reserve_attempt(email: str, address: str | None) -> None:
    """Count a sign-in attempt under every key it falls under, or refuse it while any key
    still waits. Raises TooManyRequests (with Retry-After) and counts nothing then."""
    keys = _keys(email, address)
    with unit_of_work():
        now = utcnow()
        rows = _rows(list(keys))
        waits = [_wait(rows[key], now) for key in keys]
        if max(waits) > 0:
            raise TooManyRequests(
                "Too many failed sign-ins; wait a little and try again.",
                headers={"Retry-After": str(max(1, math.ceil(max(waits))))},
            )
        for key, rule in keys.items():
            row = rows[key]
            if row.updated_at < now - WINDOW:
                row.failures = 0
            row.failures += 1
            delay = _delay(rule, row.failures)
            row.next_allowed_at = now + delay if delay else None
            row.updated_at = now


def release_attempt(email: str, address: str | None) -> None:
    """A successful sign-in: the account's and the pair's counts start over; the address
    only gets this attempt back (one good account must not clear a guesser's record)."""
    keys = _keys(email, address)
    with unit_of_work():
        for key, rule in keys.items():
            row = db.session.get(SignInThrottle, key)
            if row is None:
                continue
            if rule is ADDRESS:
                row.failures = max(0, row.failures - 1)
                delay = _delay(rule, row.failures)
                row.next_allowed_at = row.updated_at + delay if delay else None
            else:
                db.session.delete(row)


def forget_old_counts() -> int:
    """Delete counts older than the window (the worker may call it; so does every failure
    now and then). Returns how many rows went."""
    with unit_of_work():
        result = db.session.execute(
            sa.delete(SignInThrottle)
            .where(SignInThrottle.updated_at < utcnow() - WINDOW)
            .execution_options(synchronize_session=False)
        )
    return result.rowcount or 0
