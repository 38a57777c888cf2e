"""Browser journeys: headless Chromium (pytest-playwright) against the app on a live server.

Every test in this folder is marked `browser` and skipped when /usr/bin/chromium is missing.
`live_server` serves the session `app` over real HTTP; pytest-playwright's `base_url` points at
it, so `page.goto("/tokens")` works. These tests are marked `truncate`: they commit for real and
rows are emptied after each test (tests/conftest.py),
so a journey that needs the demo accounts asks for `demo_people`. Page helpers such as
`sign_in` live in tests/browser/pages.py.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from portal.cli import demo
from portal.extensions import db

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 10_000
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    # A conftest's collection hook sees the whole session's items: only touch this folder's.
    skip = pytest.mark.skip(reason=f"browser tests need Chromium at {CHROMIUM} (not found)")
    for item in items:
        if not item.path.resolve().is_relative_to(HERE):
            continue
        item.add_marker(pytest.mark.browser)
        # The live server answers from its own threads: rows must really be committed.
        item.add_marker(pytest.mark.truncate)
        if not CHROMIUM.exists():
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args():
    """The system Chromium: Playwright's own browser download never works here."""
    return {
        "executable_path": str(CHROMIUM),
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
        "headless": True,
    }


@pytest.fixture(scope="session")
def live_server(csrf_app):
    """The app as users get it (`csrf_app`: CSRF protection on, so every journey also proves
    that forms and htmx requests carry the token) over HTTP on 127.0.0.1, in a daemon thread.
    The OS chooses the port, so pytest-xdist workers never collide."""
    app = csrf_app
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}", app=app)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def base_url(live_server):
    """pytest-playwright passes this to every browser context: relative URLs just work."""
    return live_server.url


CSP_VIOLATION = "Content Security Policy"


@pytest.fixture
def csp_violations() -> list[str]:
    """What the browser reported as blocked by the Content-Security-Policy in this test."""
    return []


@pytest.fixture
def new_context(new_context, csp_violations):
    """pytest-playwright's factory, with every context reporting CSP violations: a journey
    whose page breaks the policy fails, whatever it asserts itself."""

    def make(**kwargs):
        ctx = new_context(**kwargs)

        def on_console(message):
            if message.type == "error" and CSP_VIOLATION in message.text:
                csp_violations.append(f"{message.location.get('url')}: {message.text}")

        ctx.on("console", on_console)
        return ctx

    yield make
    assert csp_violations == [], "the Content-Security-Policy blocked something"


@pytest.fixture
def context(new_context):
    """A fresh browser context per test, with 10 s for actions, navigations and expect()."""
    expect.set_options(timeout=TIMEOUT_MS)
    ctx = new_context()
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.set_default_navigation_timeout(TIMEOUT_MS)
    return ctx


@pytest.fixture
def demo_people(app):
    """The demo companies and accounts (`flask seed-demo`); password demo.DEMO_PASSWORD."""
    with app.app_context():
        demo.seed_accounts()
        db.session.remove()
    return {email: role for email, role, _company in demo.DEMO_USERS}
