"""Publishing journeys: a developer uploads a package or pastes a manifest, sees mistakes
next to the field while the page stays put (htmx), fixes them, submits, and finds the release
pending on its page and in "My releases"; without JavaScript the same form still works."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import ModuleRelease
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.pages import (
    mark_page,
    open_from_nav,
    page_was_not_reloaded,
    release_row,
    sign_in,
)
from tests.packaging import manifest_yaml, zip_package

DEVELOPER = "dev@acme.example.com"
NAME = "purchasing"
VERSION = "1.0.0"


def _release_page(base_url: str, name: str = NAME, version: str = VERSION) -> str:
    return f"{base_url}/modules/{name}?version={version}"


def _open_publish(page, base_url):
    """Signed in as the demo developer, on "Publish" reached from the navigation."""
    sign_in(page, base_url, DEVELOPER)
    open_from_nav(page, "Publish")
    expect(page).to_have_url(f"{base_url}/publish")
    expect(page.get_by_role("heading", name="Publish a module")).to_be_visible()
    expect(page.get_by_role("link", name="Publish", exact=True)).to_have_attribute(
        "aria-current", "page"
    )


def _expect_release_page(page, base_url, name: str = NAME, version: str = VERSION):
    expect(page).to_have_url(_release_page(base_url, name, version))
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    expect(page.get_by_role("heading", level=1)).to_contain_text(version)
    expect(page.locator(".module-head").get_by_test_id("status")).to_have_text("pending")


def test_a_developer_fixes_a_package_from_its_live_error_and_sees_it_pending(
    page, base_url, demo_people, tmp_path
):
    _open_publish(page, base_url)
    mark_page(page)
    package_input = page.get_by_label("Package")
    package_errors = page.locator("#package-errors")
    summary = page.locator("#validation-summary")

    # The package's module.yaml says "1.0": not a MAJOR.MINOR.PATCH version.
    package = tmp_path / f"{NAME}.zip"
    package.write_bytes(zip_package(manifest_yaml(NAME, "1.0")))
    package_input.set_input_files(package)

    # Shown beside the package input, where the manifest came from.
    shown = page.locator("#package-errors").filter(has_text="/version")
    expect(shown).to_have_count(1)
    expect(shown).to_contain_text("'1.0' is not a valid version")
    expect(shown.get_by_role("alert")).to_be_visible()
    expect(summary.get_by_test_id("validation-failed")).to_be_visible()
    assert page.url == f"{base_url}/publish"
    assert page_was_not_reloaded(page)

    # Fixed and rebuilt under the same file name, then picked again. From another folder:
    # Chromium fires no `change` when the very same path is picked a second time (as a person
    # re-picking the same file in the dialog), so no validation would run.
    fixed = tmp_path / "fixed" / package.name
    fixed.parent.mkdir()
    fixed.write_bytes(zip_package(manifest_yaml(NAME, VERSION)))
    package_input.set_input_files(fixed)

    expect(summary.get_by_test_id("validation-ok")).to_contain_text(f"{NAME} {VERSION}")
    expect(summary.get_by_test_id("validation-ok")).to_contain_text("is valid")
    expect(package_errors).to_be_empty()
    expect(page.locator("#manifest-errors")).to_be_empty()
    expect(summary.get_by_test_id("validation-failed")).to_have_count(0)
    assert page.url == f"{base_url}/publish"
    assert page_was_not_reloaded(page)

    with page.expect_navigation():
        page.get_by_role("button", name="Submit for review").click()

    _expect_release_page(page, base_url)
    expect(page.get_by_role("heading", name="Package")).to_be_visible()
    expect(page.locator("section").filter(has_text="SHA-256")).to_contain_text(
        f"{NAME}-{VERSION}.zip"
    )

    open_from_nav(page, "Publish")

    row = release_row(page, NAME, VERSION)
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("status")).to_have_text("pending")
    expect(row.get_by_role("link", name=NAME).first).to_have_attribute(
        "href", f"/modules/{NAME}?version={VERSION}"
    )


def test_a_mistake_in_a_packages_manifest_shows_next_to_the_package_input(
    page, base_url, demo_people, tmp_path
):
    _open_publish(page, base_url)
    package = tmp_path / f"{NAME}.zip"
    package.write_bytes(zip_package(manifest_yaml(NAME, "1.0")))

    page.get_by_label("Package").set_input_files(package)

    expect(page.locator("#validation-summary").get_by_test_id("validation-failed")).to_be_visible()
    expect(page.locator("#package-errors")).to_contain_text("/version", timeout=2_000)
    expect(page.locator("#manifest-errors")).to_be_empty()


@pytest.mark.parametrize(
    ("mistake", "pointer", "fix"),
    [
        pytest.param(
            manifest_yaml(NAME, VERSION) + "dependecies: []\n",
            "/dependecies",
            manifest_yaml(NAME, VERSION) + "dependencies: []\n",
            id="unknown-key",
        ),
        pytest.param(
            manifest_yaml("Purchasing", VERSION), "/name", manifest_yaml(NAME, VERSION), id="name"
        ),
    ],
)
def test_a_developer_fixes_a_pasted_manifest_while_typing(
    page, base_url, demo_people, mistake, pointer, fix
):
    _open_publish(page, base_url)
    mark_page(page)
    manifest = page.get_by_label("Manifest (module.yaml)")
    manifest_errors = page.locator("#manifest-errors")
    summary = page.locator("#validation-summary")

    manifest.fill(mistake)

    # Checked ~400 ms after the last keystroke, in place.
    expect(manifest_errors).to_contain_text(pointer)
    expect(summary.get_by_test_id("validation-failed")).to_be_visible()
    expect(page.locator("#package-errors")).to_be_empty()
    assert page.url == f"{base_url}/publish"
    assert page_was_not_reloaded(page)

    manifest.fill(fix)

    expect(summary.get_by_test_id("validation-ok")).to_contain_text(f"{NAME} {VERSION} is valid")
    expect(manifest_errors).to_be_empty()
    assert page_was_not_reloaded(page)

    with page.expect_navigation():
        page.get_by_role("button", name="Submit for review").click()

    _expect_release_page(page, base_url)


def test_publishing_works_without_javascript(new_context, base_url, demo_people):
    context = new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    _open_publish(page, base_url)
    manifest = page.get_by_label("Manifest (module.yaml)")

    # A mistake: the server answers with the whole page, the error under the manifest.
    mistake = manifest_yaml(NAME, "1.0")
    manifest.fill(mistake)
    with page.expect_navigation():
        page.get_by_role("button", name="Submit for review").click()

    expect(page).to_have_url(f"{base_url}/publish")
    expect(page.locator("#manifest-errors")).to_contain_text("/version")
    expect(manifest).to_have_value(mistake)

    manifest.fill(manifest_yaml(NAME, VERSION))
    with page.expect_navigation():
        page.get_by_role("button", name="Submit for review").click()

    _expect_release_page(page, base_url)
    open_from_nav(page, "Publish")
    expect(release_row(page, NAME, VERSION).get_by_test_id("status")).to_have_text("pending")


def test_a_developer_fixes_a_rejected_package_and_its_dependencies_survive(
    page, base_url, live_server, demo_people, tmp_path
):
    """The usual fix: the same dependencies, better words, a new package picked on the
    resubmit form (which starts from the package, not the old manifest)."""
    deps = [{"name": "base-lib", "version": ">=1.0.0"}, {"name": "auth", "version": "^2"}]
    first = tmp_path / f"{NAME}.zip"
    first.write_bytes(zip_package(manifest_yaml(NAME, VERSION, dependencies=deps)))
    _open_publish(page, base_url)
    page.get_by_label("Package").set_input_files(first)
    expect(page.locator("#validation-summary").get_by_test_id("validation-ok")).to_be_visible()
    page.get_by_role("button", name="Submit for review").click()
    _expect_release_page(page, base_url)
    with live_server.app.app_context():
        release = db.session.execute(
            sa.select(ModuleRelease).where(ModuleRelease.name == NAME)
        ).scalar_one()
        release.status, release.status_reason = "rejected", "Say what it does."
        db.session.commit()
        db.session.remove()

    open_from_nav(page, "Publish")
    release_row(page, NAME, VERSION).get_by_role("link", name="Fix and resubmit").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Resubmit {NAME}")
    expect(page.get_by_test_id("resubmit-hint")).to_be_visible()
    expect(page.get_by_label("Manifest (module.yaml)")).to_have_value("")
    fixed = tmp_path / "fixed" / first.name
    fixed.parent.mkdir()
    words = "Purchase orders with a two-step approval"
    fixed.write_bytes(
        zip_package(manifest_yaml(NAME, VERSION, description=words, dependencies=deps))
    )
    page.get_by_label("Package").set_input_files(fixed)
    expect(page.locator("#validation-summary").get_by_test_id("validation-ok")).to_be_visible()
    page.get_by_role("button", name="Resubmit for review").click()
    _expect_release_page(page, base_url)
    expect(page.get_by_text(words)).to_be_visible()
