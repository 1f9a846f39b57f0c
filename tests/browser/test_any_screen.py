"""Every page in every state, on a phone (390 px) and a desktop (1280 px), in English and Italian
(SPEC §7 "Language, accessibility, any screen"), in Debian's Chromium: axe-core finds no serious or
critical violation, nothing scrolls sideways, the console stays free of errors (the favicon
included), and each action keeps its place. A screenshot of each is saved under var/screenshots/.

The app is served in this process over the fakes, the clock fixed on 2026-11-26. The matrix is
slow: it runs once per CI run, on the newest Python (skipped on 3.8, which runs everything else)."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from pathlib import Path
from typing import Callable, Dict, Iterator, Tuple

import pytest
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from tests.browser.support import CHROMIUM, LAUNCH_ARGS, sync_api
from tests.conftest import MALFORMED_SAMPLE, VALID_SAMPLE, at
from tests.unit.conftest import World, build_world
from warehouse_core.model import Delivery
from warehouse_web import create_app

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "var" / "screenshots"
WIDTHS = (390, 1280)
LANGUAGES = ("en", "it")

if sys.version_info < (3, 9) and os.environ.get("WAREHOUSE_BROWSER_MATRIX") != "1":
    pytest.skip(
        "the browser matrix (every page x state x width x language) runs once per CI run, on the newest "
        "Python; WAREHOUSE_BROWSER_MATRIX=1 runs it here too",
        allow_module_level=True,
    )


# --- the states ----------------------------------------------------------------------------


def _none(world: World) -> str:
    return "/"


def _ready(world: World) -> str:
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    return "/"


def _running(world: World) -> str:
    _ready(world)
    world.core.start_session(world.clock.now(), actor="anna")
    return "/"


def _running_with_a_detail(world: World) -> str:
    """The longest status line: a running session whose try failed with a long error, or that waits
    for an earlier day's delivery; it wraps, nothing scrolls sideways."""
    _running(world)
    with world.store.unit_of_work() as uow:
        uow.update_session(
            world.clock.now().date(),
            detail="try 2 of 3 failed, retried in 6 s: OSError: [Errno 28] No space left on device: "
            "'/var/lib/warehouse/exports/Spedizioni20261126_6.txt.partial-0123456789abcdef'",
        )
    return "/"


def _closed_being_checked(world: World) -> str:
    """Closed after the rename was asked for, the outbound server silent: the delivery is being checked."""
    _running(world)
    with world.store.unit_of_work() as uow:
        uow.set_delivery(world.clock.now().date(), Delivery.UNKNOWN)
    world.outbound.unreachable = True
    world.core.close_session(world.clock.now(), actor="anna")
    return "/"


def _completed(world: World) -> str:
    _ready(world)
    world.importer_confirms()
    world.core.start_session(world.clock.now(), actor="anna")
    world.work()
    world.deliver()
    return "/"


def _failed(world: World) -> str:
    _ready(world)
    world.outbound.fail_next = 3
    world.core.start_session(world.clock.now(), actor="anna")
    world.work()
    world.deliver()
    return "/"


def _closed(world: World) -> str:
    _ready(world)
    world.core.close_session(world.clock.now(), actor="anna")
    return "/"


def _earlier(world: World) -> str:
    """Yesterday failed and needs someone; today has nothing yet: the page lists the earlier day
    with its Close (SPEC §5 "Earlier days are never out of reach")."""
    world.clock.set(at("2026-11-25T10:00"))
    world.inbound.files[VALID_SAMPLE.name.replace("20261126", "20261125")] = VALID_SAMPLE.read_bytes()
    world.core.ingest_daily_file(world.clock.now())
    world.outbound.fail_next = 3
    world.core.start_session(world.clock.now(), actor="anna")
    world.work()
    world.clock.set(at("2026-11-26T10:00"))
    return "/"


def _history(world: World) -> str:
    _earlier(world)
    world.inbound.files[MALFORMED_SAMPLE.name] = MALFORMED_SAMPLE.read_bytes()
    world.poll("2026-11-26T09:00")
    world.inbound.files.pop(MALFORMED_SAMPLE.name, None)
    _completed(world)
    return "/days"


def _completed_day(world: World) -> str:
    _completed(world)
    return "/days/2026-11-26"


def _failed_day(world: World) -> str:
    _failed(world)
    return "/days/2026-11-26"


def _rejected_day(world: World) -> str:
    world.inbound.files[MALFORMED_SAMPLE.name] = MALFORMED_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.deliver()
    return "/days/2026-11-26"


def _closed_delivered(world: World) -> str:
    """Closed by the operator while the file was being renamed into place: the server then says it
    went through; the status line names the file that was delivered."""
    _running(world)
    world.outbound.on_upload = lambda name, data: world.core.close_session(world.clock.now(), actor="anna")
    world.work()
    world.outbound.on_upload = None
    return "/"


def _closed_delivered_day(world: World) -> str:
    """Its day page: the closed day's detail, its delivery among the facts, and the timeline line
    that says when the service learnt it."""
    _closed_delivered(world)
    return "/days/2026-11-26"


def _login(world: World) -> str:
    return "/login"


STATES: Dict[str, Callable[[World], str]] = {
    "none": _none,
    "ready": _ready,
    "running": _running,
    "running-with-a-detail": _running_with_a_detail,
    "closed-being-checked": _closed_being_checked,
    "completed": _completed,
    "failed": _failed,
    "closed": _closed,
    "earlier": _earlier,
    "login": _login,
    "days": _history,
    "day-completed": _completed_day,
    "day-failed": _failed_day,
    "day-rejected": _rejected_day,
    "closed-delivered": _closed_delivered,
    "day-closed-delivered": _closed_delivered_day,
}


# --- the harness ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not AXE.exists():
        pytest.fail("axe-core is not installed: make test runs `npm ci --prefix tests/browser` first")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield launched
        launched.close()


@contextlib.contextmanager
def serve(make_settings: Callable[..., object], language: str, state: str) -> Iterator[Tuple[World, str]]:
    overrides = {"language": language}
    if state == "login":
        overrides["operators"] = "anna:" + generate_password_hash("correct horse", method="pbkdf2:sha256:1000")
    world = build_world(make_settings, **overrides)
    path = STATES[state](world)
    server = make_server("127.0.0.1", 0, create_app({"TESTING": True}, core=world.core), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield world, "http://127.0.0.1:{}{}".format(server.server_port, path)
    finally:
        server.shutdown()
        thread.join(10)


AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => v.id + " (" + v.impact + "): " + v.nodes.map((n) => n.target.join(" ")).join(", "));
}"""

PLACES = """() => ["start", "status", "close", "upload"].map((id) => {
  const box = document.getElementById(id).getBoundingClientRect();
  return [id, Math.round(box.left), Math.round(box.width)];
})"""


BROKEN_WORDS = """() => [...document.querySelectorAll('td.who, .state')].filter((cell) => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  return !/\\s/.test(cell.textContent.trim()) && range.getClientRects().length > 1;
}).map((cell) => cell.textContent.trim())"""


def check_page(browser, url: str, width: int, name: str) -> Dict[str, object]:
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.add_init_script(path=str(AXE))  # through the DevTools protocol: the page's CSP stays as served
    page = context.new_page()
    console_errors = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    page.on("response", lambda r: console_errors.append("{} {}".format(r.status, r.url)) if r.status >= 400 else None)
    try:
        page.goto(url, wait_until="networkidle")
        found = {
            "lang": page.evaluate("document.documentElement.lang"),
            "serious": page.evaluate(AXE_RUN),
            "sideways": page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth"),
            # An ISO date is never broken at its hyphens (the status line, the refusals, the dialog).
            "broken_dates": page.evaluate(
                "() => [...document.querySelectorAll('.date')].filter((d) => d.getClientRects().length > 1)"
                ".map((d) => d.textContent)"
            ),
            # Nor is a one-word cell broken inside its word (the timeline's "Who": "syste/m").
            "broken_words": page.evaluate(BROKEN_WORDS),
            "text": page.locator("body").inner_text(),
        }
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "{}.png".format(name)), full_page=True)
        found["console"] = list(console_errors)
        return found
    finally:
        context.close()


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("state", list(STATES))
def test_every_page_in_every_state_on_a_phone_and_a_desktop(browser, make_settings, language, state):
    with serve(make_settings, language, state) as (_world, url):
        for width in WIDTHS:
            found = check_page(browser, url, width, "{}-{}-{}".format(language, width, state))
            where = "{} {} at {} px".format(state, language, width)
            assert found["lang"] == language, where
            assert found["serious"] == [], where
            assert found["sideways"] <= 0, "{} scrolls sideways by {} px".format(where, found["sideways"])
            assert found["console"] == [], where
            assert found["broken_dates"] == [], where
            assert found["broken_words"] == [], where
            if state == "earlier":
                assert "2026-11-25" in str(found["text"]), "{}: the earlier day is not on the page".format(where)
            if language == "it" and state not in ("login",):
                assert not re.search(r"\b(Warehouse|Session|History|Start|Close)\b", str(found["text"])), where


def test_each_action_keeps_its_place_in_every_state(browser, make_settings):
    """A disabled Start never stretches to its refusal's width: every button has the same left edge
    and width in every state of the operator page, at each width (in Italian, the longer labels)."""
    language = "it"
    seen = {}
    for state in ("none", "ready", "running", "completed", "failed", "closed"):
        with serve(make_settings, language, state) as (_world, url):
            for width in WIDTHS:
                context = browser.new_context(viewport={"width": width, "height": 900})
                page = context.new_page()
                page.goto(url, wait_until="networkidle")
                seen.setdefault(width, {})[state] = page.evaluate(PLACES)
                context.close()
    for width, by_state in seen.items():
        first = by_state["none"]
        assert all(places == first for places in by_state.values()), (width, by_state)
