"""One Chromium per test module, a fresh context per test; a JavaScript error fails the test."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def browser():
    from tests.browser.support import CHROMIUM, LAUNCH_ARGS, sync_api

    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    opened = context.new_page()
    errors = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], "the page raised JavaScript errors"
