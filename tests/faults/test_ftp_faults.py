"""Scenarios 1-4: the inbound FTP server misbehaves, the poll process dies at each step."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import VALID_SAMPLE
from tests.faults.conftest import query, wait_until

NAME = VALID_SAMPLE.name
AT = ("poll", "--at", "2026-11-26T10:00")
AGAIN = ("poll", "--at", "2026-11-26T10:30")


def imported_once(service, real_store, ftp_server, smtp_server):
    """The file is gone from the server, archived, recorded once with its lines once, mailed once."""
    assert ftp_server.files() == []
    assert service.archive() == ["2026-11-26/" + NAME]
    assert query(real_store, "SELECT name, status FROM inbound_file") == [(NAME, "imported")]
    assert query(real_store, "SELECT count(*), count(DISTINCT line_number) FROM invoice_line") == [(8, 8)]
    assert smtp_server.events() == ["import-summary"]


def nothing_imported(service, real_store, ftp_server):
    assert ftp_server.files() == [NAME]
    assert query(real_store, "SELECT count(*) FROM inbound_file") == [(0,)]
    assert query(real_store, "SELECT count(*) FROM invoice_line") == [(0,)]


@pytest.mark.fault("1. connection drops mid-download", "server closes after 100 bytes of RETR")
def test_dropped_download(service, real_store, ftp_server, smtp_server, outcome):
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    ftp_server.faults.drop_retr_after = 100
    result = service.run(*AT)
    assert result.returncode == 1 and "could not be read" in result.stderr.strip().splitlines()[-1], result.stderr
    nothing_imported(service, real_store, ftp_server)
    ftp_server.faults.drop_retr_after = None
    assert service.run(*AGAIN).returncode == 0
    imported_once(service, real_store, ftp_server, smtp_server)
    outcome("nothing deleted or imported; next poll imported once")


@pytest.mark.fault("2a. RETR refused", "550 to RETR")
def test_refused_download(service, real_store, ftp_server, smtp_server, outcome):
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    ftp_server.faults.refuse.add("RETR")
    result = service.run(*AT)
    assert result.returncode == 1 and "550" in result.stderr.strip().splitlines()[-1], result.stderr  # SPEC §9
    nothing_imported(service, real_store, ftp_server)
    ftp_server.faults.refuse.clear()
    service.run(*AGAIN)
    imported_once(service, real_store, ftp_server, smtp_server)
    outcome("no delete; next poll imported once")


@pytest.mark.fault("2b. short transfer", "226 after 200 of 427 bytes")
def test_short_transfer(service, real_store, ftp_server, smtp_server, outcome):
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    ftp_server.faults.short_retr_after = 200
    result = service.run(*AT)
    assert "cut short" in result.stderr
    nothing_imported(service, real_store, ftp_server)
    ftp_server.faults.short_retr_after = None
    service.run(*AGAIN)
    imported_once(service, real_store, ftp_server, smtp_server)
    outcome("never taken for success; next poll imported once")


@pytest.mark.fault("3. DELE fails", "550 to DELE")
def test_failed_delete(service, real_store, ftp_server, smtp_server, outcome):
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    ftp_server.faults.refuse.add("DELE")
    result = service.run(*AT)
    assert "could not delete" in result.stderr
    assert ftp_server.files() == [NAME]
    assert query(real_store, "SELECT count(*) FROM invoice_line") == [(8,)]
    ftp_server.faults.refuse.clear()
    result = service.run(*AGAIN)
    assert "already recorded" in result.stderr
    imported_once(service, real_store, ftp_server, smtp_server)
    outcome("imported once; next poll deleted it without a second import")


def kill_when(service, ftp_server, hold, release_after_kill=True):
    """Start a poll, wait until it hangs on the held FTP command (or DB lock), SIGKILL it."""
    process = service.start(*AT)
    try:
        hold()
    finally:
        service.finish(process, kill=True)
    if release_after_kill:
        ftp_server.faults.release.set()
    return process


@pytest.mark.parametrize(
    "step, command",
    [
        ("after download", "SIZE"),  # the size check that follows the download
        ("before DELE (after the database commit)", "DELE"),
        ("after DELE", "QUIT"),
    ],
)
def test_poll_killed_at_an_ftp_step(step, command, service, real_store, ftp_server, smtp_server, outcome, request):
    request.node.add_marker(pytest.mark.fault("4. poll SIGKILLed " + step, "SIGKILL while the server holds " + command))
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    ftp_server.faults.hang_on.add(command)

    def hold():
        assert ftp_server.faults.hanging.wait(60), "the poll never reached " + command

    kill_when(service, ftp_server, hold)
    ftp_server.faults.hang_on.clear()
    result = service.run(*AGAIN)
    assert result.returncode == 0, result.stderr
    imported_once(service, real_store, ftp_server, smtp_server)
    outcome("restart imported it exactly once; archived")


@pytest.mark.fault("4. poll SIGKILLed mid-download", "SIGKILL while the server holds RETR")
def test_a_poll_killed_mid_download_leaves_a_partial_file_the_next_poll_clears(
    service, real_store, ftp_server, smtp_server, outcome
):
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    ftp_server.faults.hang_on.add("RETR")

    def hold():
        assert ftp_server.faults.hanging.wait(60), "the poll never reached RETR"

    kill_when(service, ftp_server, hold)
    ftp_server.faults.hang_on.clear()
    incoming = service.data_dir / "incoming"
    assert [p.name[:9] for p in incoming.glob("*.part")] == ["download-"], "the killed poll left its partial download"
    result = service.run(*AGAIN)
    assert result.returncode == 0, result.stderr
    assert list(incoming.glob("*.part")) == []
    assert "removed a partial download" in result.stderr
    imported_once(service, real_store, ftp_server, smtp_server)
    outcome("the next poll removed the partial download and imported the file once")


@pytest.mark.fault("4. poll SIGKILLed after archive", "SIGKILL while inbound_file is locked")
def test_poll_killed_after_archiving(service, real_store, ftp_server, smtp_server, outcome):
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    with real_store.connection() as blocker:
        blocker.execute("LOCK TABLE inbound_file IN EXCLUSIVE MODE")
        process = service.start(*AT)
        wait_until(lambda: _waiting_on_lock(real_store), what="the poll to wait on the lock")
        service.finish(process, kill=True)
        blocker.rollback()
    assert service.archive() == ["2026-11-26/" + NAME]
    nothing_imported(service, real_store, ftp_server)
    service.run(*AGAIN)
    imported_once(service, real_store, ftp_server, smtp_server)
    outcome("file stayed on the server; restart imported it once")


def _waiting_on_lock(store):
    rows = query(store, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    return rows[0][0] > 0


@pytest.mark.fault("10b. two pollers, one file", "two poll processes started together")
def test_two_pollers_import_once(service, real_store, ftp_server, smtp_server, outcome):
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    ftp_server.faults.hang_on.add("RETR")
    first = service.start(*AT)
    assert ftp_server.faults.hanging.wait(60)
    second = service.run(*AT)
    ftp_server.faults.release.set()
    output = service.wait(first)
    assert first.returncode == 0, output
    assert "another poll is running" in second.stdout
    imported_once(service, real_store, ftp_server, smtp_server)
    outcome("one import; the second poller skipped")
