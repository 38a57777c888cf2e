"""The command line of api.md: companies, users, tokens, seed-demo, worker --once."""

from __future__ import annotations

from portal.cli.demo import DEMO_INSTALLATIONS, DEMO_PASSWORD, DEMO_RELEASES, DEMO_USERS
from portal.extensions import db
from portal.models import Company, Installation, ModuleRelease, User
from portal.services.accounts import users
from tests.helpers import count


def _run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def test_companies_users_and_tokens_can_be_created_from_the_cli(app, client):
    assert _run(app, "companies", "create", "initech", "--name", "Initech").exit_code == 0
    result = _run(
        app,
        "users",
        "create",
        "peter@initech.test",
        "--password",
        "tps-reports-1",
        "--role",
        "company_admin",
        "--company",
        "initech",
    )
    assert result.exit_code == 0, result.output
    token = _run(app, "tokens", "create", "peter@initech.test", "--name", "ci").output.strip()
    assert token.startswith("mrt_")
    resp = client.get("/api/v1/events", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200


def test_cli_refuses_bad_input_with_a_message_and_stores_nothing(app):
    bad_slug = _run(app, "companies", "create", "Not A Slug", "--name", "X")
    assert bad_slug.exit_code != 0 and "/slug" in bad_slug.output
    no_company = _run(
        app, "users", "create", "a@b.test", "--password", "longenough", "--role", "developer"
    )
    assert no_company.exit_code != 0 and "/company" in no_company.output
    unknown = _run(app, "tokens", "create", "ghost@nowhere.test")
    assert unknown.exit_code != 0
    with app.app_context():
        assert count(Company) == 0 and count(User) == 0


def test_duplicate_company_is_a_clear_error(app):
    _run(app, "companies", "create", "acme", "--name", "Acme")
    again = _run(app, "companies", "create", "acme", "--name", "Acme")
    assert again.exit_code != 0 and "exists" in again.output


def test_seed_demo_is_idempotent_and_every_demo_account_signs_in(app, client):
    first = _run(app, "seed-demo")
    assert first.exit_code == 0 and DEMO_PASSWORD in first.output
    second = _run(app, "seed-demo")
    assert second.exit_code == 0
    with app.app_context():
        assert count(User) == len(DEMO_USERS)
        # A living marketplace: approved modules, one waiting for review, an installation.
        assert count(ModuleRelease) == len(DEMO_RELEASES)
        assert count(Installation) >= len(DEMO_INSTALLATIONS)
        for email, role, _company in DEMO_USERS:
            assert users.authenticate(email, DEMO_PASSWORD).role == role
        db.session.remove()


def test_worker_once_without_redis_leaves_events_in_the_database(app):
    result = _run(app, "worker", "--once")
    assert result.exit_code == 0, result.output
