"""The sign-in throttle (services/accounts/throttle.py): growing delays per account, per
client address and per pair instead of a hard lock anyone could put on the owner
(reliability review D4), counted atomically so concurrent guesses cannot exceed the
allowance, shared by every process through the database."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import SignInThrottle
from portal.models.base import utcnow
from portal.services.accounts import throttle, users
from portal.services.errors import TooManyRequests, Unauthorized
from tests.helpers import PASSWORD

ATTACKER = "203.0.113.7"
OWNER = "198.51.100.20"


def _fail(email: str, address: str):
    with pytest.raises(Unauthorized):
        users.authenticate(email, "wrong password", address=address)


def _age_counts(seconds: float) -> None:
    """Move every count and wait into the past, as if `seconds` had gone by."""
    rows = db.session.execute(sa.select(SignInThrottle)).scalars().all()
    for row in rows:
        row.updated_at -= timedelta(seconds=seconds)
        if row.next_allowed_at is not None:
            row.next_allowed_at -= timedelta(seconds=seconds)
    db.session.commit()


def test_five_free_failures_then_each_attempt_waits_longer(app_ctx, people):
    email = people.developer.email
    for _ in range(5):
        _fail(email, ATTACKER)
    with pytest.raises(TooManyRequests) as refused:
        users.authenticate(email, PASSWORD, address=ATTACKER)  # right password, still waits
    assert refused.value.headers["Retry-After"] == "1"
    _age_counts(1.5)
    _fail(email, ATTACKER)  # allowed again after the wait, and now the wait doubles
    with pytest.raises(TooManyRequests) as refused:
        users.authenticate(email, PASSWORD, address=ATTACKER)
    assert refused.value.headers["Retry-After"] == "2"


def test_a_guesser_does_not_lock_the_owner_out(app_ctx, people):
    email = people.developer.email
    for _ in range(5):
        _fail(email, ATTACKER)
    account = f"account:{email}"
    for _ in range(40):  # the guesser comes back as soon as each wait is over
        try:
            _fail(email, ATTACKER)
        except TooManyRequests as exc:
            _age_counts(int(exc.headers["Retry-After"]) + 0.5)
        if db.session.get(SignInThrottle, account).failures > 12:
            break
    assert db.session.get(SignInThrottle, account).failures > 12  # past its free ten
    # The owner, from their own address: at most the account's one-minute wait.
    try:
        user = users.authenticate(email, PASSWORD, address=OWNER)
    except TooManyRequests as exc:
        assert int(exc.headers["Retry-After"]) <= 60
        _age_counts(61)
        user = users.authenticate(email, PASSWORD, address=OWNER)
    assert user.email == email


def test_one_address_guessing_many_accounts_is_slowed(app_ctx, people):
    for i in range(20):
        _fail(f"nobody{i}@acme.test", ATTACKER)
    with pytest.raises(TooManyRequests):
        users.authenticate("nobody99@acme.test", "x", address=ATTACKER)
    # Someone else signs in meanwhile, unaffected.
    assert users.authenticate(people.developer.email, PASSWORD, address=OWNER)


def test_a_success_starts_the_pair_over_but_not_the_address(app_ctx, people):
    email = people.developer.email
    for _ in range(4):
        _fail(email, ATTACKER)
    users.authenticate(email, PASSWORD, address=ATTACKER)
    for _ in range(4):
        _fail(email, ATTACKER)  # free again: the pair's count started over
    address = db.session.get(SignInThrottle, f"address:{ATTACKER}")
    assert address.failures == 8


def test_counts_older_than_the_window_are_forgotten(app_ctx, people):
    for _ in range(5):
        _fail(people.developer.email, ATTACKER)
    _age_counts(throttle.WINDOW.total_seconds() + 1)
    assert users.authenticate(people.developer.email, PASSWORD, address=ATTACKER)
    _fail("someone@acme.test", OWNER)
    _age_counts(throttle.WINDOW.total_seconds() + 1)
    assert throttle.forget_old_counts() >= 1
    assert db.session.execute(sa.select(SignInThrottle)).scalars().all() == [] or all(
        row.updated_at >= utcnow() - throttle.WINDOW
        for row in db.session.execute(sa.select(SignInThrottle)).scalars()
    )


@pytest.mark.truncate
def test_forty_concurrent_guesses_get_five_checked(app, people):
    """Every attempt is counted before its password is checked, under the keys' row locks
    (PostgreSQL) or the write lock (SQLite): no race gets a sixth guess through."""
    email = people.developer.email
    barrier = threading.Barrier(40)
    outcomes: list[str] = []
    lock = threading.Lock()

    def guess():
        with app.app_context():
            barrier.wait()
            try:
                users.authenticate(email, "wrong password", address=ATTACKER)
            except Unauthorized:
                result = "checked"
            except TooManyRequests:
                result = "throttled"
            finally:
                db.session.remove()
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=guess) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == 40
    assert outcomes.count("checked") == 5, outcomes
