"""A whole day against real servers: PostgreSQL, inbound and outbound FTP, SMTP, and the remote
log read over SSH from a real sshd, with a stand-in for the customer's importer."""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import VALID_SAMPLE, at
from tests.fakes import RunningClock
from warehouse_core.bootstrap import bootstrap
from warehouse_devstack.servers import FtpServer, RemoteImporter, body_text
from warehouse_runner.jobs import run_session_worker
from warehouse_web import create_app

EXPORT = "Spedizioni20261126_6.txt"


@pytest.fixture
def outbound_server(tmp_path):
    server = FtpServer(tmp_path / "outbound-root", user="shipper", password="secret-out").start()
    yield server
    server.stop()


@pytest.fixture
def day(
    tmp_path,
    postgres_server,
    db_schema,
    real_store,
    ftp_server,
    outbound_server,
    smtp_server,
    ssh_server,
    make_settings,
):
    """The core wired to real servers; the remote log lives in a folder sshd serves."""
    log_folder = Path(tempfile.mkdtemp(prefix="warehouse-importer-"))
    log_folder.chmod(0o755)  # readable by the recording account too

    class Day:
        clock = RunningClock(at("2026-11-26T10:00"))
        importer = None

        def build(self, mode="ok", log_timeout=20, remote_log_fs=None):
            settings = make_settings(
                database_url=postgres_server,
                db_schema=db_schema,
                inbound_ftp_url=ftp_server.url(),
                outbound_ftp_url=outbound_server.url(),
                smtp_url=smtp_server.url(),
                remote_log_fs=remote_log_fs or ssh_server.url(),
                remote_log_host_key=ssh_server.host_key_fingerprint(),
                remote_log_path=str(log_folder / "importer-{date}.log"),
                remote_log_interval=0.2,
                remote_log_timeout=log_timeout,
                ftp_timeout=5,
            )
            self.core = bootstrap(settings, clock=self.clock)
            self.importer = RemoteImporter(
                outbound_server.root, log_folder / "importer-20261126.log", mode=mode
            ).start()
            self.client = create_app({"TESTING": True}, core=self.core).test_client()
            return self

        def csrf(self):
            page = self.client.get("/").get_data(as_text=True)
            return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

        def post(self, url):
            return self.client.post(url, headers={"X-CSRF-Token": self.csrf()})

        def run_until_finished(self, timeout=30):
            stop = threading.Event()
            worker = threading.Thread(target=run_session_worker, args=(self.core, stop, 0.1))
            worker.start()
            seen = []
            try:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    status = self.client.get("/api/session").get_json()
                    seen.append(status["processed"])
                    if status["state"] != "running":
                        return status, seen
                    time.sleep(0.05)
                raise AssertionError("the session did not finish: {}".format(status))
            finally:
                stop.set()
                self.core.session_wakeup.set()
                worker.join(10)

    built = Day()
    yield built
    if built.importer is not None:
        built.importer.stop()
    if getattr(built, "core", None) is not None:
        built.core.close()
    shutil.rmtree(str(log_folder), ignore_errors=True)


def import_sample(day, ftp_server):
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    report = day.core.ingest_daily_file(day.clock.now())
    assert report.imported == [VALID_SAMPLE.name]


def test_a_whole_day_import_start_export_confirm_complete(day, ftp_server, outbound_server, smtp_server):
    day.build()
    import_sample(day, ftp_server)
    assert day.client.get("/api/session").get_json()["state"] == "ready"
    started = day.post("/api/session/start")
    assert started.status_code == 202
    assert day.post("/api/session/start").status_code == 409
    status, _ = day.run_until_finished()
    assert status["state"] == "completed", status
    assert (status["processed"], status["total"], status["export_file"]) == (6, 6, EXPORT)
    assert outbound_server.files() == [EXPORT]
    lines = (outbound_server.root / EXPORT).read_text(encoding="utf-8").splitlines()
    assert lines == [
        "600000001|2026-11-20|C001|Rossi Alimentari|Via Roma 1, Milano|12|120.50",
        "600000002|2026-11-21|C002|Bianchi & Figli|Corso Italia 22, Torino|3|15",
        "600000005|2026-11-24|C003|Verdi S.r.l.|Piazza Duomo 3, Firenze|7|70.7",
        "600000006|2026-11-25|C001|Rossi Alimentari|Via Roma 1, Milano|2|2.00",
        "600000007|2026-11-25|C004|Esposito Market|Via Toledo 9, Napoli|5|12.25",
        "600000008|2026-11-26|C005|Gallo Drinks|Via Po 5, Bologna|1|0.99",
    ]
    assert day.post("/api/session/close").status_code == 409
    day.core.deliver_outbox(day.clock.now())  # whatever the worker has not delivered yet
    assert smtp_server.events() == ["import-summary", "session-completed"]
    text = body_text(smtp_server.by_event("session-completed")[0])
    assert "600000004" in text and "600000099" in text and EXPORT in text and "Lines generated: 6" in text


def test_a_whole_session_asks_the_log_server_to_run_nothing(
    day, ftp_server, ssh_server, recording_ssh_account, smtp_server
):
    """SPEC §4: the log server is only read. The log account's login shell records any command."""
    recorded = len(recording_ssh_account.commands())
    day.build(remote_log_fs=recording_ssh_account.url(ssh_server))
    import_sample(day, ftp_server)
    assert day.post("/api/session/start").status_code == 202
    status, _ = day.run_until_finished()
    assert status["state"] == "completed", status
    assert recording_ssh_account.commands()[recorded:] == []


@pytest.mark.parametrize(
    "mode, timeout, reason",
    [
        ("error", 20, "the remote log reports an error for " + EXPORT),
        ("wrong-count", 20, "the remote log reports 5 records read from " + EXPORT + ", but 6 were written"),
        ("silent", 1, "no confirmation of " + EXPORT + " in the remote log within 1 s"),
    ],
)
def test_remote_log_failures_end_failed_with_the_reason_mailed(day, ftp_server, smtp_server, mode, timeout, reason):
    day.build(mode=mode, log_timeout=timeout)
    import_sample(day, ftp_server)
    day.post("/api/session/start")
    status, _ = day.run_until_finished()
    assert status["state"] == "failed" and reason in status["detail"]
    day.core.deliver_outbox(day.clock.now())
    assert reason in body_text(smtp_server.by_event("session-failed")[0])
    assert day.post("/api/session/close").get_json()["state"] == "closed"


def test_a_refused_upload_is_retried_then_fails(day, ftp_server, outbound_server, smtp_server):
    day.build()
    outbound_server.faults.refuse.add("STOR")
    import_sample(day, ftp_server)
    day.post("/api/session/start")
    waits = []
    # The worker's wait, whose backoff passes at once here: the tries are the subject, not the pause.
    day.core.run_session.run_pending(lambda seconds: waits.append(seconds) or False)
    status = day.client.get("/api/session").get_json()
    assert waits == [2.0, 4.0]
    assert status["state"] == "failed"
    assert "failed after 3 tries" in status["detail"]
    assert outbound_server.files() == []
