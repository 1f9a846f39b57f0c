"""A failed day in the history, in a real browser: the app served in this process over the fakes
(a failed upload is one switch on the fake outbound server), the clock fixed on 2026-11-26."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from tests.browser.support import shot, sync_api
from tests.conftest import VALID_SAMPLE
from tests.unit.conftest import build_world
from warehouse_web import create_app


@pytest.fixture
def served(make_settings):
    world = build_world(make_settings)
    server = make_server("127.0.0.1", 0, create_app({"TESTING": True}, core=world.core), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield world, "http://127.0.0.1:{}/".format(server.server_port)
    finally:
        server.shutdown()
        thread.join(10)


def test_a_failed_day_shows_its_reason_and_since_when(served, page):
    world, url = served
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.outbound.fail_next = 3
    world.core.start_session(world.clock.now(), actor="anna")
    world.work()
    page.goto(url)
    sync_api.expect(page.locator("#status-line")).to_contain_text("failed")
    sync_api.expect(page.locator("#start")).to_be_disabled()
    sync_api.expect(page.locator("#start-refusal")).to_contain_text("failed: it cannot be started again from the page")
    sync_api.expect(page.locator("#close")).to_be_enabled()
    page.click("#to-history")
    row = page.locator('#days tr[data-day="2026-11-26"]')
    sync_api.expect(row).to_have_attribute("data-state", "failed")
    row.locator("a").first.click()
    failure = page.locator("#failure")
    sync_api.expect(failure).to_contain_text("Failed since 2026-11-26")
    sync_api.expect(failure).to_contain_text("the upload to the outbound FTP server failed after 3 tries")
    sync_api.expect(page.locator("#reconciliation")).to_contain_text("Does not reconcile")
    started = page.locator('#timeline tr[data-kind="session-started"]')
    sync_api.expect(started).to_contain_text("anna")
    shot(page, "14-failed-day")
    page.click("#to-history")
    sync_api.expect(page.locator("#days")).to_be_visible()
