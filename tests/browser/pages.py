"""Helpers that drive pages the way a person would (labels, roles, visible text)."""

from __future__ import annotations

import re

from playwright.sync_api import Page

from portal.cli.demo import DEMO_PASSWORD


def sign_in(page: Page, base_url: str, email: str, password: str = DEMO_PASSWORD) -> None:
    """Sign in through the form and wait for the page it leads to; fails if it refuses."""
    page.goto(f"{base_url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    if page.url.split("?")[0].endswith("/login"):
        raise AssertionError(f"sign-in as {email} failed: {page.locator('main').inner_text()}")


def sign_out(page: Page) -> None:
    """Press "Sign out" in the top bar and wait for the page it leads to."""
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()


def nav_labels(page: Page) -> list[str]:
    """The main navigation's link texts, in order, without badge counts (`.count` spans)."""
    nav = page.locator("nav[aria-label=Main]")
    nav.wait_for()
    return nav.locator("a").evaluate_all(
        """links => links.map(link => {
            const copy = link.cloneNode(true);
            copy.querySelectorAll(".count").forEach(badge => badge.remove());
            return copy.textContent.replace(/\\s+/g, " ").trim();
        })"""
    )


def open_from_nav(page: Page, label: str) -> None:
    """Click a link of the main navigation by its label and wait for the page it opens."""
    nav = page.get_by_role("navigation", name="Main")
    # A link with a live count is named "Review queue 3": match the label, badge or not.
    name = re.compile(rf"^{re.escape(label)}(\s+\d+)?$")
    with page.expect_navigation():
        nav.get_by_role("link", name=name).click()
    page.wait_for_load_state()


def mark_page(page: Page) -> None:
    """Set `window.__marker`: a full page load wipes it, an htmx swap keeps it."""
    page.evaluate("window.__marker = 1")


def page_was_not_reloaded(page: Page) -> bool:
    """True while the page `mark_page` marked is still the one on screen."""
    return page.evaluate("window.__marker") == 1


def release_row(page: Page, name: str, version: str):
    """The row of one release in "My releases" (templates/publish/_releases.html)."""
    return page.locator(f'#releases tr[data-name="{name}"][data-version="{version}"]')
