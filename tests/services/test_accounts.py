"""Accounts: a personal token remembers when it was last used (to the minute), and a unit
of work never commits changes made before it began."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import ApiToken, Company
from portal.models.base import utcnow
from portal.services.accounts import users
from portal.services.uow import unit_of_work
from tests.helpers import count, embedded_sqlite_app


def _last_used(token_id: int):
    db.session.expire_all()
    return db.session.get(ApiToken, token_id).last_used_at


def test_using_a_personal_token_records_when_at_most_once_a_minute(app_ctx, people):
    token, plain = users.create_api_token(users.user_by_email(people.developer.email), "ci")
    assert token.last_used_at is None
    users.user_for_bearer(plain)
    first = _last_used(token.id)
    assert first is not None and utcnow() - first < timedelta(seconds=10)

    # Within the minute: no write, the first time stands.
    users.user_for_bearer(plain)
    assert _last_used(token.id) == first

    # Once the minute has passed: the new time.
    earlier = utcnow() - users.TOKEN_USE_PRECISION - timedelta(seconds=1)
    db.session.execute(sa.update(ApiToken).values(last_used_at=earlier))
    db.session.commit()
    users.user_for_bearer(plain)
    assert _last_used(token.id) > earlier + timedelta(seconds=1)


@pytest.fixture
def sqlite_app(tmp_path):
    with embedded_sqlite_app(tmp_path, lambda _people: None) as made:
        yield made


def test_on_sqlite_a_unit_of_work_refuses_changes_made_before_it(sqlite_app):
    app, _people = sqlite_app
    with app.app_context():
        db.session.add(Company(slug="early", name="Made before the unit"))
        with pytest.raises(RuntimeError, match="unsaved changes"), unit_of_work():
            pass
        db.session.rollback()
        assert count(Company) == 2  # the two companies of `people`, not the early one

        with unit_of_work():
            db.session.add(Company(slug="inside", name="Made inside the unit"))
        assert count(Company) == 3
        db.session.remove()
