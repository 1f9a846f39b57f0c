"""The operator page in a real browser (Playwright driving Debian's Chromium) against the demo
stack of ``make run`` started as a subprocess on loopback. Screenshots of each state are saved
under var/test-artifacts/screenshots/."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.browser.support import shot, sync_api
from tests.conftest import CLOCK_START, MALFORMED_SAMPLE, VALID_SAMPLE, at, devstack_pythonpath
from warehouse_devstack.servers import free_port, wait_for_port
from warehouse_devstack.stack import todays_sample_name


class Stack:
    def __init__(self, var: Path, port: int, process: "subprocess.Popen[str]", schema: str = "") -> None:
        self.var = var
        self.schema = schema
        self.url = "http://127.0.0.1:{}/".format(port)
        self.process = process

    @property
    def inbound(self) -> Path:
        return self.var / "ftp" / "inbound"

    def mails(self):
        return sorted(path.name for path in (self.var / "mail").glob("*.eml"))


@pytest.fixture
def start_stack(tmp_path, postgres_server, service_environment) -> Iterator:
    started = []

    def start(name: str, **settings: str) -> Stack:
        var = tmp_path / name
        port = free_port()
        schema = "browser_" + uuid.uuid4().hex[:10]
        env = service_environment(WAREHOUSE_DATABASE_URL=postgres_server, WAREHOUSE_DB_SCHEMA=schema, **settings)
        env["PYTHONPATH"] = devstack_pythonpath(env)
        process = subprocess.Popen(
            [sys.executable, "-m", "warehouse_devstack", "--var", str(var), "--port", str(port), "--no-sample"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        wait_for_port(port, timeout=60)
        return Stack(var, port, process, schema)

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        assert process.returncode == 0, "the stack did not stop cleanly"


def status_line(page) -> str:
    return page.locator("#status-line").inner_text()


def wait_for_status(page, text: str, timeout: float = 30) -> None:
    sync_api.expect(page.locator("#status-line")).to_contain_text(text, timeout=timeout * 1000)


def upload(page, path: Path, name: str) -> None:
    page.set_input_files("#file", files=[{"name": name, "mimeType": "text/plain", "buffer": path.read_bytes()}])
    page.click("#upload")


def test_a_whole_day_in_the_browser(start_stack, page):
    stack = start_stack("day")
    page.goto(stack.url)
    wait_for_status(page, "No data for")
    shot(page, "01-no-data")

    shutil.copy(str(VALID_SAMPLE), str(stack.inbound / todays_sample_name(at(CLOCK_START))))
    page.click("#poll-now")
    sync_api.expect(page.locator("#poll-result")).to_contain_text("imported")
    page.click("#status")
    wait_for_status(page, "is ready")
    shot(page, "02-ready")

    # A ready day refuses a manual upload: the button is disabled with the reason beside it.
    sync_api.expect(page.locator("#upload")).to_be_disabled()
    sync_api.expect(page.locator("#upload-refusal")).to_contain_text("manual upload is refused")
    shot(page, "03-upload-refused")

    page.click("#start")
    sync_api.expect(page.locator("#progress")).to_be_visible(timeout=10000)
    wait_for_status(page, "shipments processed out of 6 total")
    progress = page.locator("#progress")
    sync_api.expect(progress).to_have_attribute("value", "6", timeout=10000)
    shot(page, "04-running")
    wait_for_status(page, "completed - 6 shipments exported in Spedizioni", timeout=60)
    sync_api.expect(progress).to_be_hidden()
    shot(page, "05-completed")

    # Start and Close are refused for one reason: it is said once, beside Start, and Close points to it.
    for action in ("start", "close"):
        sync_api.expect(page.locator("#" + action)).to_be_disabled()
        sync_api.expect(page.locator("#" + action)).to_have_attribute("aria-describedby", "start-refusal")
    sync_api.expect(page.locator("#start-refusal")).to_contain_text("is completed: nothing more happens today")
    sync_api.expect(page.locator("#close-refusal")).to_be_hidden()
    shot(page, "06-start-and-close-refused")

    # The demo panel lists the day's mails, each readable.
    sync_api.expect(page.locator("#mail-table")).to_contain_text("session-completed", timeout=20000)
    page.locator("#mail-table a", has_text="session-completed").first.click()
    sync_api.expect(page.locator(".mail-text")).to_contain_text("600000099")
    shot(page, "07-mail")
    [export] = list((stack.var / "ftp" / "outbound").glob("Spedizioni*_6.txt"))

    # The history: today's row, its page, the export as uploaded, and back.
    page.goto(stack.url)
    page.click("#to-history")
    today = at(CLOCK_START).date().isoformat()
    row = page.locator('#days tr[data-day="{}"]'.format(today))
    sync_api.expect(row).to_have_attribute("data-state", "completed")
    sync_api.expect(row).to_contain_text(export.name)
    shot(page, "10-history")
    row.locator("a").first.click()
    sync_api.expect(page.locator("#day-state")).to_contain_text("completed")
    sync_api.expect(page.locator("#reconciliation")).to_contain_text("Reconciles")
    sync_api.expect(page.locator('#timeline tr[data-kind="session-confirmed"]')).to_have_count(1)
    shot(page, "11-completed-day")
    with page.expect_download() as download:
        page.click("#download-export")
    assert Path(download.value.path()).read_bytes() == export.read_bytes()
    page.click("#to-history")
    sync_api.expect(page.locator("#days")).to_be_visible()


def test_manual_upload_on_a_fresh_day(start_stack, page):
    stack = start_stack("fresh")
    page.goto(stack.url)
    wait_for_status(page, "No data for")
    upload(page, MALFORMED_SAMPLE, MALFORMED_SAMPLE.name)
    sync_api.expect(page.locator("#message")).to_contain_text("was rejected: 4 problems found")
    problems = page.locator("#problems li")
    sync_api.expect(problems).to_have_count(4)
    assert problems.all_inner_texts() == [
        "Line 2: invoice number '60000002' has 8 characters, expected 9",
        "Line 3: quantity 'forty' is not a whole number",
        "Line 4: value '70,7' uses a comma; the decimal separator is a dot",
        "Line 5: has 3 fields separated by '|', expected 4",
    ]
    shot(page, "08-upload-rejected")
    upload(page, VALID_SAMPLE, VALID_SAMPLE.name)
    sync_api.expect(page.locator("#message")).to_contain_text("was imported: 8 lines stored")
    wait_for_status(page, "is ready")
    sync_api.expect(page.locator("#problems")).to_be_hidden()
    shot(page, "09-upload-imported")


def test_close_asks_first_and_a_cancel_changes_nothing(start_stack, page):
    stack = start_stack("close")
    page.goto(stack.url)
    wait_for_status(page, "No data for")
    upload(page, VALID_SAMPLE, VALID_SAMPLE.name)
    wait_for_status(page, "is ready")
    today = at(CLOCK_START).date().isoformat()
    page.click("#close")
    dialog = page.locator("#close-dialog")
    sync_api.expect(dialog).to_be_visible()
    sync_api.expect(dialog).to_contain_text("Close the session for {}? Nothing more happens on {}".format(today, today))
    shot(page, "12-close-asks")
    page.click("#close-cancel")
    sync_api.expect(dialog).to_be_hidden()
    page.click("#status")
    wait_for_status(page, "is ready")
    page.keyboard.press("Tab")  # the page stays usable by keyboard after the dialog
    page.click("#close")
    page.click("#close-confirm")
    wait_for_status(page, "closed - nothing more happens today")
    sync_api.expect(page.locator("#close")).to_be_disabled()
    sync_api.expect(page.locator("#start")).to_be_disabled()
    page.click("#to-timeline")
    closed = page.locator('#timeline tr[data-kind="session-closed"]')
    sync_api.expect(closed).to_have_count(1)
    sync_api.expect(closed).to_contain_text("anonymous@127.0.0.1")
    shot(page, "13-closed-day")


def test_an_upload_over_the_limit_names_the_limit_on_the_page(start_stack, page):
    stack = start_stack("limit", WAREHOUSE_MAX_UPLOAD_MB="1")
    page.goto(stack.url)
    wait_for_status(page, "No data for")
    # Twice the limit: the app answers. Five times: past what the web server reads at all.
    for megabytes in (2, 5):
        page.set_input_files(
            "#file", files=[{"name": "big.txt", "mimeType": "text/plain", "buffer": b"6" * (megabytes * 1024 * 1024)}]
        )
        page.click("#upload")
        sync_api.expect(page.locator("#message")).to_have_text("The file is larger than the 1 MB upload limit.")
        shot(page, "10-upload-over-the-limit-{}mb".format(megabytes))
        page.evaluate("document.getElementById('message').textContent = ''")


def test_a_day_that_failed_yesterday_is_on_the_page_and_closed_by_keyboard(start_stack, page, postgres_server):
    """SPEC §5 "Earlier days are never out of reach": after midnight the failed day is listed with
    why, its Close is reachable by keyboard and asks first, naming the day."""
    import psycopg

    stack = start_stack("earlier")
    yesterday = (at(CLOCK_START) - dt.timedelta(days=1)).date().isoformat()
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(
            'INSERT INTO "{}".work_session (day, state, phase, export_file, detail) VALUES'
            " (%s, 'failed', 'watching', 'Spedizioni{}_6.txt', 'no confirmation in the remote log within 900 s')".format(
                stack.schema, yesterday.replace("-", "")
            ),
            (yesterday,),
        )
    page.goto(stack.url)
    earlier = page.locator("#earlier-days")
    sync_api.expect(earlier).to_be_visible()
    sync_api.expect(earlier).to_contain_text(yesterday)
    sync_api.expect(earlier).to_contain_text("no confirmation in the remote log within 900 s")
    shot(page, "14-earlier-day-failed")
    close = page.locator(".earlier-close")
    for _ in range(40):  # Tab through the page until the earlier day's Close has the focus
        page.keyboard.press("Tab")
        if close.evaluate("button => button === document.activeElement"):
            break
    else:
        pytest.fail("the earlier day's Close is not reachable with Tab")
    page.keyboard.press("Enter")
    dialog = page.locator("#earlier-close-dialog")
    sync_api.expect(dialog).to_be_visible()
    sync_api.expect(dialog).to_contain_text(
        "Close the session for {}? Nothing more happens on {}".format(yesterday, yesterday)
    )
    page.keyboard.press("Escape")
    sync_api.expect(dialog).to_be_hidden()
    assert close.evaluate("button => button === document.activeElement"), "the focus goes back to Close"
    page.keyboard.press("Enter")
    page.click("#earlier-close-confirm")
    sync_api.expect(earlier).to_be_hidden()
    page.goto(stack.url + "days/" + yesterday)
    closed = page.locator('#timeline tr[data-kind="session-closed"]')
    sync_api.expect(closed).to_have_count(1)
    sync_api.expect(closed).to_contain_text("anonymous@127.0.0.1")
