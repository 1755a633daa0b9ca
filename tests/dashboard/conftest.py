"""Fixtures of the dashboard's browser tests: one headless Chromium per session, a fresh
page per test, and a helper that signs a page in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.dashboard.browser import executable


# Per module, not per session: Playwright's sync API keeps an event loop running in the main
# thread while it is open, which would break every later test that runs one of its own.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = executable()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        # As root (in CI containers) Chromium's sandbox cannot start: the page is ours.
        launched = driver.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))

    def console(message: Any) -> None:
        # A refused request (a 4xx page) is logged too; a script error or a CSP violation
        # is what matters.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    opened.on("console", console)
    yield opened
    context.close()
    # A script error or a CSP violation (logged to the console) fails the test.
    assert errors == [], errors


def sign_in(page: Any, base_url: str, credential: str) -> None:
    """Sign in with the keyboard only: the form's label, typing, Enter."""
    page.goto(f"{base_url}/dashboard/")
    field = page.get_by_label("API key or admin token")
    field.focus()
    page.keyboard.type(credential)
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard/jobs**")
