"""Sessions (SPEC §5): every transition of the state table, the export, upload and remote log."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import SAMPLE_VIEW, VALID_SAMPLE
from tests.fakes import WorkerKilled
from warehouse_core.errors import Conflict
from warehouse_core.model import SessionPhase, SessionState

DAY = dt.date(2026, 11, 26)
EXPORT = "Spedizioni20261126_6.txt"
LOG = "importer-20261126.log"


@pytest.fixture
def ready(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    assert world.core.session_status().state is SessionState.READY
    return world


def state(world):
    return world.core.session_status().state


def refused(action, code):
    with pytest.raises(Conflict) as caught:
        action()
    assert caught.value.code == code
    return caught.value


def test_none_refuses_start_and_close(world):
    assert state(world) is SessionState.NONE
    refused(lambda: world.core.start_session(world.clock.now()), "no_data")
    refused(lambda: world.core.close_session(world.clock.now()), "no_data")


def test_a_whole_day_ready_running_completed(ready):
    ready.importer_confirms()
    started = ready.core.start_session(ready.clock.now())
    assert started.state is SessionState.RUNNING and ready.core.session_wakeup.is_set()
    assert ready.work() == 1
    status = ready.core.session_status()
    assert status.state is SessionState.COMPLETED
    assert (status.processed, status.total, status.export_file) == (6, 6, EXPORT)
    assert list(ready.outbound.files) == [EXPORT]
    lines = ready.outbound.files[EXPORT].decode("utf-8").splitlines()
    assert lines[0] == "600000001|2026-11-20|C001|Rossi Alimentari|Via Roma 1, Milano|12|120.50"
    assert [line.split("|")[0] for line in lines] == [
        "600000001",
        "600000002",
        "600000005",
        "600000006",
        "600000007",
        "600000008",
    ]
    [mail] = ready.store.mails("session-completed")
    assert "600000004" in mail.text and "600000099" in mail.text and EXPORT in mail.text
    refused(lambda: ready.core.start_session(ready.clock.now()), "completed")
    refused(lambda: ready.core.close_session(ready.clock.now()), "completed")


def test_two_starts_give_one_start(ready):
    ready.core.start_session(ready.clock.now())
    refused(lambda: ready.core.start_session(ready.clock.now()), "running")


def test_close_when_ready_is_final(ready):
    assert ready.core.close_session(ready.clock.now()).state is SessionState.CLOSED
    refused(lambda: ready.core.start_session(ready.clock.now()), "closed")
    refused(lambda: ready.core.close_session(ready.clock.now()), "closed")


def test_close_while_running_stops_the_worker(ready):
    ready.core.start_session(ready.clock.now())
    ready.core.close_session(ready.clock.now())
    ready.work()
    assert state(ready) is SessionState.CLOSED
    assert ready.outbound.files == {} and ready.store.mails("session-completed") == []


def test_close_while_watching_the_log_stops_there(ready):
    ready.core.start_session(ready.clock.now())
    closes = []

    def close_after_a_read(seconds):
        if not closes:
            closes.append(ready.core.close_session(ready.clock.now()))
        return ready.clock.wait(seconds)

    ready.core.run_session.run_pending(close_after_a_read)
    assert state(ready) is SessionState.CLOSED
    assert list(ready.outbound.files) == [EXPORT] and ready.store.mails("session-failed") == []


def test_failed_can_only_be_closed(ready):
    ready.remote_log.append(LOG, "x")
    ready.outbound.on_upload = lambda name, data: ready.remote_log.append(LOG, "{}: ERROR line 2".format(name))
    ready.core.start_session(ready.clock.now())
    ready.work()
    failed = ready.core.session_status()
    assert failed.state is SessionState.FAILED and "ERROR line 2" in failed.detail
    refused(lambda: ready.core.start_session(ready.clock.now()), "failed")
    closed = ready.core.close_session(ready.clock.now())
    assert closed.state is SessionState.CLOSED
    assert closed.detail == failed.detail  # Close settles a running session's work only: why it failed stays


def test_a_refusal_says_the_state_and_its_sentence_names_the_day(ready):
    ready.core.close_session(ready.clock.now())
    refusal = refused(lambda: ready.core.start_session(ready.clock.now()), "closed")
    assert refusal.state == "closed"
    assert "2026-11-26" in ready.core.sentences.text(refusal.code, **refusal.values)


@pytest.mark.parametrize(
    "arrange, reason",
    [
        (
            lambda w: setattr(
                w.outbound, "on_upload", lambda n, d: w.remote_log.append(LOG, n + ": ERROR bad customer")
            ),
            "the remote log reports an error for " + EXPORT,
        ),
        (lambda w: w.importer_confirms(records=5), "reports 5 records read from " + EXPORT + ", but 6 were written"),
        (lambda w: None, "no confirmation of " + EXPORT + " in the remote log within 900 s"),
        (lambda w: setattr(w.outbound, "fail_next", 3), "the upload to the outbound FTP server failed after 3 tries"),
    ],
    ids=["log-error", "wrong-count", "timeout", "upload-refused"],
)
def test_failures_end_failed_with_the_reason_mailed(ready, arrange, reason):
    arrange(ready)
    ready.core.start_session(ready.clock.now())
    ready.work()
    status = ready.core.session_status()
    assert status.state is SessionState.FAILED and reason in status.detail
    [mail] = ready.store.mails("session-failed")
    assert reason in mail.text


def test_transient_upload_errors_are_retried(ready):
    ready.importer_confirms()
    ready.outbound.fail_next = 2
    ready.core.start_session(ready.clock.now())
    ready.work()
    assert state(ready) is SessionState.COMPLETED and ready.outbound.attempts == 3


def test_upload_retries_back_off_and_the_failure_names_the_servers_error(ready):
    ready.outbound.fail_next = 3
    ready.core.start_session(ready.clock.now())
    waits = []

    def wait(seconds):
        waits.append(seconds)
        return ready.clock.wait(seconds)

    ready.core.run_session.run_pending(wait)
    status = ready.core.session_status()
    assert status.state is SessionState.FAILED and ready.outbound.attempts == 3
    assert len(waits) == 2 and waits[0] == ready.core.run_session.config.upload_backoff < waits[1]  # backing off
    assert "451 refused by the fake server" in status.detail


def test_a_remote_log_unreadable_until_the_timeout_fails_saying_so(ready):
    ready.importer_confirms()
    ready.remote_log.unreadable = True
    ready.core.start_session(ready.clock.now())
    ready.work()
    status = ready.core.session_status()
    assert status.state is SessionState.FAILED
    assert "no confirmation of " + EXPORT + " in the remote log within 900 s" in status.detail
    assert "reading the fake log: connection refused" in status.detail  # why nothing was seen


@pytest.mark.parametrize(
    "logged", ["/srv/import/done/" + EXPORT, "C:\\import\\done\\" + EXPORT], ids=["posix-path", "windows-path"]
)
def test_the_log_may_name_the_file_with_its_path_on_the_consumers_side(ready, logged):
    ready.outbound.on_upload = lambda name, data: ready.remote_log.append(LOG, logged + ": 6 records read")
    ready.core.start_session(ready.clock.now())
    ready.work()
    assert state(ready) is SessionState.COMPLETED


def test_other_files_lines_in_the_log_are_not_ours(ready):
    def importer(name, data):
        ready.remote_log.append(LOG, "Spedizioni20261125_6.txt: 6 records read")
        ready.remote_log.append(LOG, "Spedizioni20261125_3.txt: ERROR line 2")
        ready.remote_log.append(LOG, "{}: 6 records read".format(name))

    ready.outbound.on_upload = importer
    ready.core.start_session(ready.clock.now())
    ready.work()
    assert state(ready) is SessionState.COMPLETED


def test_a_success_line_from_before_the_upload_does_not_count(ready):
    ready.remote_log.append(LOG, "{}: 6 records read".format(EXPORT))
    ready.core.start_session(ready.clock.now())
    ready.work()
    assert "no confirmation" in ready.core.session_status().detail


def test_a_day_without_valid_lines_fails_no_line_generated(world):
    world.store.invoice_view.clear()
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.core.start_session(world.clock.now())
    world.work()
    status = world.core.session_status()
    assert "no records to generate" in status.detail and (status.processed, status.total) == (0, 0)


def test_statuses_are_recomputed_at_start(ready):
    ready.store.invoice_view["600000004"] = dict(ready.store.invoice_view["600000001"], invoice_number="600000004")
    ready.importer_confirms()
    ready.core.start_session(ready.clock.now())
    ready.work()
    status = ready.core.session_status()
    assert status.total == 7 and status.export_file == "Spedizioni20261126_7.txt"
    [mail] = ready.store.mails("session-completed")
    assert "600000099" in mail.text and "600000004" not in mail.text


def test_invoices_exported_by_an_earlier_day_are_already_exported(ready):
    ready.importer_confirms()
    ready.core.start_session(ready.clock.now())
    ready.work()
    ready.inbound.files["Letture20261127080000000_9.txt"] = VALID_SAMPLE.read_bytes()
    ready.poll("2026-11-27T08:00")
    ready.importer_confirms()
    ready.core.start_session(ready.clock.now())
    ready.work()
    status = ready.core.session_status()
    assert status.state is SessionState.FAILED and "no records to generate" in status.detail
    summary = ready.store.mails("import-summary")[-1]
    assert "already exported" in summary.text


def test_progress_is_stored_as_lines_are_written_at_most_every_half_second(ready):
    """SPEC §5: processed counts up as lines are written; PROGRESS_INTERVAL: at most this often.
    Lines 0 and 3 take a minute each to read, the others no time."""
    ready.importer_confirms()
    seen = []

    def slow_lines(index):
        seen.append(ready.core.session_status().processed)
        if index in (0, 3):
            ready.clock.advance(60)

    waits_before_the_upload = []

    def wait(seconds):
        if ready.outbound.attempts == 0:
            waits_before_the_upload.append(seconds)
        return ready.clock.wait(seconds)

    ready.store.on_export_line = slow_lines
    ready.core.start_session(ready.clock.now())
    ready.core.run_session.run_pending(wait)
    assert state(ready) is SessionState.COMPLETED
    assert seen == [0, 1, 1, 1, 4, 4]  # stored after lines 1 and 4, not after every line
    assert waits_before_the_upload and set(waits_before_the_upload) == {0}  # asks about shutdown, never pauses


def test_an_export_file_that_does_not_match_the_count_fails_and_is_not_uploaded(ready):
    """A local file of the export's name with more lines than the day's valid count (left by an
    earlier run): the export cannot be trusted, and the reason gives both counts."""
    ready.exports.files[(DAY, EXPORT)] = bytearray(b"600000001|stale\n" * 7)
    ready.core.start_session(ready.clock.now())
    ready.work()
    status = ready.core.session_status()
    assert status.state is SessionState.FAILED and ready.outbound.files == {}
    assert "7" in status.detail and "6" in status.detail


def test_a_worker_works_every_running_session_a_left_over_one_too(ready):
    """Yesterday's session is still running (its worker died) when today's starts: one round of
    the worker takes both, and says so."""
    ready.core.start_session(ready.clock.now())
    # The next day's file carries other invoices (the same ones would be held by yesterday's export).
    for number, row in SAMPLE_VIEW.items():
        ready.store.invoice_view["61" + number[2:]] = dict(row, invoice_number="61" + number[2:])
    ready.inbound.files["Letture20261127080000000_9.txt"] = (b"\n" + VALID_SAMPLE.read_bytes()).replace(
        b"\n60", b"\n61"
    )[1:]
    ready.poll("2026-11-27T08:00")
    ready.core.start_session(ready.clock.now())
    assert ready.core.run_session.run_pending(lambda seconds: seconds > 0) == 2  # each stops at its first wait
    for day in (DAY, dt.date(2026, 11, 27)):
        assert ready.store.data.sessions[day].phase is SessionPhase.WATCHING


def test_a_running_session_whose_worker_died_resumes_without_writing_a_line_twice(ready):
    ready.importer_confirms()
    ready.core.start_session(ready.clock.now())
    ready.store.die_during_export_after = 3
    with pytest.raises(WorkerKilled):
        ready.work()
    ready.exports.files[(DAY, EXPORT)].extend(b"60000")  # a torn last write
    assert state(ready) is SessionState.RUNNING
    ready.work()
    assert state(ready) is SessionState.COMPLETED
    lines = ready.outbound.files[EXPORT].decode().splitlines()
    assert len(lines) == 6 and len(set(lines)) == 6
    assert [line.split("|")[0] for line in lines] == [
        "600000001",
        "600000002",
        "600000005",
        "600000006",
        "600000007",
        "600000008",
    ]


def test_resume_in_the_watching_phase_reads_the_log_again(ready):
    ready.core.start_session(ready.clock.now())
    stopped = ready.core.run_session.run_pending(lambda seconds: seconds > 0)  # stop at the first wait
    assert stopped == 1 and ready.core.session_status().phase is SessionPhase.WATCHING
    ready.remote_log.append(LOG, "{}: 6 records read".format(EXPORT))
    ready.work()
    assert state(ready) is SessionState.COMPLETED and ready.outbound.attempts == 1


def test_a_claimed_session_is_not_worked_twice(ready):
    ready.core.start_session(ready.clock.now())
    with ready.store.claim_session(DAY):
        assert ready.work() == 0
    assert state(ready) is SessionState.RUNNING


def test_manual_upload_makes_the_day_ready_and_is_refused_after(world):
    import io

    summary = world.core.import_upload(
        "Letture20261126083015123_9.txt", io.BytesIO(VALID_SAMPLE.read_bytes()), world.clock.now()
    )
    assert summary.stored_lines == 8 and state(world) is SessionState.READY
    refused(
        lambda: world.core.import_upload("x.txt", io.BytesIO(VALID_SAMPLE.read_bytes()), world.clock.now()),
        "day_has_data",
    )
