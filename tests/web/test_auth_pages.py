"""Sign-in, sign-out and sessions through the pages."""

from __future__ import annotations

import pytest

from tests.helpers import PASSWORD, login


def test_sign_in_with_the_right_password_opens_the_marketplace(client, people):
    resp = client.post("/login", data={"email": people.developer.email, "password": PASSWORD})
    assert resp.status_code == 303
    assert client.get("/").status_code == 200


def test_wrong_password_and_unknown_email_get_the_same_answer(client, people):
    wrong = client.post("/login", data={"email": people.developer.email, "password": "nope-nope"})
    unknown = client.post("/login", data={"email": "ghost@nowhere.test", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert "Invalid email or password." in wrong.get_data(as_text=True)

    def strip(resp):
        text = resp.get_data(as_text=True)
        return text.replace("ghost@nowhere.test", "").replace(people.developer.email, "")

    assert strip(wrong) == strip(unknown)


def test_five_failures_lock_the_email_for_the_window_even_with_the_right_password(client, people):
    for _ in range(5):
        assert (
            client.post(
                "/login", data={"email": people.developer.email, "password": "wrong-pass"}
            ).status_code
            == 401
        )
    locked = client.post("/login", data={"email": people.developer.email, "password": PASSWORD})
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= 15 * 60
    # Other accounts are not affected.
    login(client, people.acme_admin.email)


def test_unknown_emails_are_locked_out_too(client, people):
    for _ in range(5):
        client.post("/login", data={"email": "ghost@nowhere.test", "password": "wrong-pass"})
    resp = client.post("/login", data={"email": "ghost@nowhere.test", "password": "x" * 10})
    assert resp.status_code == 429
    assert "Retry-After" in resp.headers


def test_a_session_cookie_replayed_after_sign_out_is_refused(app, people):
    client = app.test_client()
    login(client, people.developer.email)
    captured = client.get_cookie("session").value
    assert client.post("/logout").status_code == 303
    replay = app.test_client()
    replay.set_cookie("session", captured)
    resp = replay.get("/tokens")
    assert resp.status_code == 302
    assert "/login" in resp.headers["Location"]


def test_session_cookie_is_httponly_and_samesite_lax(client, people):
    resp = client.post("/login", data={"email": people.developer.email, "password": PASSWORD})
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_pages_redirect_anonymous_visitors_to_sign_in_and_back(client):
    resp = client.get("/tokens")
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/login?next=/tokens")


def test_htmx_requests_of_anonymous_visitors_get_an_hx_redirect(htmx_client):
    resp = htmx_client.get("/tokens")
    assert resp.status_code == 200
    assert resp.headers["HX-Redirect"].startswith("/login")


@pytest.mark.parametrize(
    "next_",
    [
        "//evil.example/x",
        "/%09/evil.example",  # browsers drop the tab: //evil.example
        "/%0A/evil.example",  # a newline in the Location header was a 500
        "/%0D%0ASet-Cookie:x=1",
        "/%5C%5Cevil.example",  # backslashes read as slashes
        "/\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "evil.example",
        "/%20/evil.example",
        "",
    ],
)
def test_sign_in_never_redirects_off_site_whatever_next_says(client, people, next_):
    resp = client.post(
        f"/login?next={next_}",
        data={"email": people.developer.email, "password": PASSWORD},
    )
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/"


def test_sign_in_goes_back_to_a_same_site_page_with_its_query(client, people):
    resp = client.post(
        "/login?next=/company/acme/installations%3Fpage%3D2",
        data={"email": people.developer.email, "password": PASSWORD},
    )
    assert resp.headers["Location"] == "/company/acme/installations?page=2"


def test_an_unknown_page_is_a_friendly_404(client, people):
    login(client, people.developer.email)
    resp = client.get("/no-such-page")
    assert resp.status_code == 404
    assert "<html" in resp.get_data(as_text=True)
