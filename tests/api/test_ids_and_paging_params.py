"""Ids and paging parameters the database cannot take: an id past 32 bits is an absent id
(404), and a paging parameter given empty or twice is a 422 (api.md), never a 200 that
guessed, nor a database error."""

from __future__ import annotations

import pytest

from tests.helpers import (
    approved_release,
    bearer,
    error_pointers,
    installation_state,
    login,
    problem_of,
)

HUGE = 2**31  # one past the largest id a row can have


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/modules/{HUGE}",
        f"/api/v1/modules/{HUGE}/package",
        f"/api/v1/installations/{HUGE}",
        f"/api/v1/installations/{HUGE}/revisions",
        f"/api/v1/installations/{2**63}",
        f"/api/v1/modules/{10**40}",
    ],
)
def test_an_id_past_what_a_row_can_hold_is_a_404(app, client, people, path):
    problem_of(client.get(path, headers=bearer(app, people.acme_admin.email)), 404)


def test_a_page_with_an_id_past_32_bits_is_a_404(client, people):
    login(client, people.acme_admin.email)
    assert client.get(f"/company/acme/installations/{HUGE}/configure").status_code == 404


@pytest.mark.parametrize(
    ("query", "pointer"),
    [
        ("page=", "/page"),
        ("per_page=", "/per_page"),
        ("page=1&page=x", "/page"),
        ("page=1&page=2", "/page"),
    ],
)
def test_an_empty_or_repeated_paging_parameter_is_a_422(app, client, people, query, pointer):
    for url in ("/api/v1/modules/", "/api/v1/installations/", "/api/v1/events"):
        resp = client.get(f"{url}?{query}", headers=bearer(app, people.admin.email))
        assert error_pointers(problem_of(resp, 422)) == [pointer], url


@pytest.mark.parametrize("cascade", ["banana", "2", "truee", "true&cascade=false"])
def test_a_cascade_that_is_not_true_or_false_is_a_422_and_uninstalls_nothing(
    app, client, people, cascade
):
    with app.app_context():
        approved_release("inventory")
    headers = bearer(app, people.acme_admin.email)
    inst = client.post("/api/v1/installations/", json={"module": "inventory"}, headers=headers)
    assert inst.status_code == 201, inst.get_data(as_text=True)
    before = installation_state(app)
    resp = client.delete(
        f"/api/v1/installations/{inst.get_json()['id']}?cascade={cascade}", headers=headers
    )
    assert error_pointers(problem_of(resp, 422)) == ["/cascade"]
    assert installation_state(app) == before
