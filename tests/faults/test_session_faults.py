"""Scenarios 7-10a: the session worker killed mid-export, the outbound server and the remote log
failing, and concurrent starts against the real web server."""

from __future__ import annotations

import datetime as dt
import http.cookiejar
import json
import re
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import at
from tests.fakes import FakeClock
from tests.faults.conftest import query, wait_until
from warehouse_core.bootstrap import bootstrap
from warehouse_core.settings import load_settings
from warehouse_devstack.servers import RemoteImporter, free_port, wait_for_port

DAY = dt.date(2026, 11, 26)
INVOICES = ("600000001", "600000002", "600000005", "600000006", "600000007", "600000008")


def write_file(folder: Path, lines: int, day: str = "20261126") -> Path:
    """A valid file whose lines are told apart by their quantity (the line number)."""
    path = folder / "Letture{}090000000_{}.txt".format(day, lines - 1)
    body = "\n".join("{}|{}|Frutta|1.00".format(INVOICES[n % len(INVOICES)], n) for n in range(1, lines + 1))
    path.write_text(body)
    return path


def core_of(service, day=DAY):
    return bootstrap(load_settings(service.env), clock=FakeClock(at(day.isoformat() + "T11:00")))


def import_and_start(service, tmp_path, lines):
    assert service.run("poll", "--at", "2026-11-26T10:00").returncode == 0  # migrates; nothing to poll
    core = core_of(service)
    with write_file(tmp_path, lines).open("rb") as stream:
        assert (
            core.import_upload(
                "Letture20261126090000000_{}.txt".format(lines - 1), stream, core.clock.now()
            ).stored_lines
            == lines
        )
    core.start_session(core.clock.now())
    return core


def importer(service, outbound_server, mode="ok"):
    remote = Path(service.env["WAREHOUSE_REMOTE_LOG_FS"][len("osfs://") :])
    return RemoteImporter(outbound_server.root, remote / "importer-20261126.log", mode=mode, interval=0.05).start()


def session_row(real_store):
    return query(
        real_store, "SELECT state, processed, total, detail, export_file FROM work_session WHERE day = %s", (DAY,)
    )[0]


@pytest.mark.fault("7. session worker SIGKILLed mid-export", "SIGKILL as the export streams; file torn at line 3000")
def test_worker_killed_mid_export_resumes_without_duplicates(
    service, real_store, outbound_server, smtp_server, tmp_path, outcome
):
    lines = 150_000
    core = import_and_start(service, tmp_path, lines)
    stand_in = importer(service, outbound_server)
    export = service.data_dir / "exports" / "2026-11-26" / "Spedizioni20261126_{}.txt".format(lines)
    worker = service.start()
    try:
        wait_until(lambda: export.exists() and export.stat().st_size > 0, timeout=60, what="the export to start")
    finally:
        service.finish(worker, kill=True)
    phase = query(real_store, "SELECT phase FROM work_session WHERE day = %s", (DAY,))[0][0]
    if phase == "exporting":
        # Where the kill lands inside the stream is up to the scheduler; make it the worst case a
        # kill during a write leaves: 3,000 whole lines and half of the next one.
        whole = export.read_bytes().splitlines(keepends=True)[:3000]
        export.write_bytes(b"".join(whole) + b"600000001|2026-11-")
        written_at_kill = "killed mid-export, resumed after line 3000 of a torn file"
    else:
        written_at_kill = "killed after the export (phase {}), resumed there".format(phase)
    assert session_row(real_store)[0] == "running"
    worker = service.start()
    try:
        wait_until(lambda: session_row(real_store)[0] != "running", timeout=120, what="the session to finish")
    finally:
        service.finish(worker)
        stand_in.stop()
        core.close()
    assert session_row(real_store)[:3] == ("completed", lines, lines)
    uploaded = (outbound_server.root / export.name).read_text().splitlines()
    quantities = [int(line.split("|")[5]) for line in uploaded]
    assert quantities == list(range(1, lines + 1)), "an export line is missing or written twice"
    outcome("{}; all {} lines exactly once".format(written_at_kill, lines))


@pytest.mark.parametrize("fault", ["refuse", "drop"])
def test_outbound_upload_fails_after_retries(
    fault, service, real_store, outbound_server, smtp_server, tmp_path, outcome, request
):
    request.node.add_marker(
        pytest.mark.fault(
            "8. outbound upload " + ("refused" if fault == "refuse" else "dropped"),
            "550 to STOR" if fault == "refuse" else "connection closed at STOR",
        )
    )
    if fault == "refuse":
        outbound_server.faults.refuse.add("STOR")
    else:
        outbound_server.faults.drop_stor = True
    core = import_and_start(service, tmp_path, 6)
    worker = service.start()
    try:
        wait_until(lambda: session_row(real_store)[0] != "running", timeout=60, what="the session to fail")
    finally:
        output = service.finish(worker)
        core.close()
    state, _, _, detail, name = session_row(real_store)
    assert state == "failed" and "failed after 3 tries" in detail
    assert output.count("upload of " + name) == 3
    assert name not in outbound_server.files()
    assert "session-failed" in smtp_server.events()
    outcome("3 tries, then session-failed; no file under the final name")


@pytest.mark.parametrize(
    "mode, reason",
    [
        ("error", "the remote log reports an error"),
        ("wrong-count", "the remote log reports 5 records read"),
        ("silent", "no confirmation of"),
    ],
)
def test_remote_log_failures(
    mode, reason, service, real_store, outbound_server, smtp_server, tmp_path, outcome, request
):
    request.node.add_marker(
        pytest.mark.fault(
            "9. remote log: " + mode,
            {"error": "an ERROR line", "wrong-count": "a count one short", "silent": "nothing within 2 s"}[mode],
        )
    )
    service.env["WAREHOUSE_REMOTE_LOG_TIMEOUT"] = "2"
    core = import_and_start(service, tmp_path, 6)
    stand_in = importer(service, outbound_server, mode=mode)
    worker = service.start()
    try:
        wait_until(lambda: session_row(real_store)[0] != "running", timeout=60, what="the session to fail")
    finally:
        service.finish(worker)
        stand_in.stop()
        core.close()
    state, _, _, detail, _ = session_row(real_store)
    assert state == "failed" and reason in detail
    mails = smtp_server.by_event("session-failed")
    assert len(mails) == 1 and reason in mails[0].get_body(preferencelist=("plain",)).get_content()
    outcome("session-failed: " + detail[:60])


@pytest.mark.fault("10a. 50 rounds of two concurrent starts", "two POST /api/session/start at once")
def test_concurrent_starts_against_the_real_web_server(service, real_store, tmp_path, outcome):
    today = DAY  # the clock of the service's processes starts on DAY (CLOCK_START)
    assert service.run("import", str(write_file(tmp_path, 6))).returncode == 0
    port = free_port()
    web = service.start("--port", str(port), "--no-scheduler", program="warehouse-web")
    starts = []
    try:
        wait_for_port(port, timeout=60)
        base = "http://127.0.0.1:{}".format(port)
        operators = [Operator(base) for _ in range(2)]
        for _ in range(50):
            with real_store.connection() as connection:
                connection.execute("UPDATE work_session SET state = 'ready' WHERE day = %s", (today,))
            barrier = threading.Barrier(2)
            codes = []
            threads = [
                threading.Thread(target=lambda o=o, codes=codes, barrier=barrier: codes.append(o.start(barrier)))
                for o in operators
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            starts.append(sorted(codes))
    finally:
        service.finish(web)
    assert starts == [[202, 409]] * 50
    outcome("exactly one 202 and one 409 in each of 50 rounds")


class Operator:
    """A browser session of its own: cookie jar and CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = self.opener.open(base + "/", timeout=10).read().decode()
        self.token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

    def start(self, barrier: threading.Barrier) -> int:
        request = urllib.request.Request(
            self.base + "/api/session/start", method="POST", data=b"", headers={"X-CSRF-Token": self.token}
        )
        barrier.wait(10)
        try:
            with self.opener.open(request, timeout=10) as response:
                json.loads(response.read())
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
