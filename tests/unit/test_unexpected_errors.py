"""Unexpected errors (SPEC §4, §5): a bug, a broken view, a full disk never leave a session
`running` with nobody able to finish it, and never skip the poll's no-file alert check."""

from __future__ import annotations

import datetime as dt

import pytest
from markupsafe import escape

from tests.conftest import VALID_SAMPLE
from tests.fakes import WorkerKilled
from warehouse_core.bootstrap import bootstrap
from warehouse_core.errors import DatabaseUnavailable
from warehouse_core.model import SessionPhase, SessionState

DAY = dt.date(2026, 11, 26)
LOG = "importer-20261126.log"


@pytest.fixture
def ready(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    return world


def with_export_columns(world, make_settings, columns):
    """The same fakes, wired with other export columns (as WAREHOUSE_EXPORT_COLUMNS would); the
    view has them at the start and loses those not in it right after."""
    original = set(world.store.view_columns)
    world.store.view_columns.update(columns.split(","))
    world.core = bootstrap(
        make_settings(remote_log_path="importer-{date}.log", export_columns=columns),
        store=world.store,
        inbound=world.inbound,
        archive=world.archive,
        mailer=world.mailer,
        clock=world.clock,
        outbound=world.outbound,
        remote_log=world.remote_log,
        exports=world.exports,
    )
    world.store.view_columns.intersection_update(original)
    return world


def test_an_export_column_missing_from_the_view_fails_the_session_after_3_retries(ready, make_settings):
    # The start-up check (bootstrap) refuses a column the view lacks: here the view loses it later,
    # as when the customer's DBA changes the view while the service runs.
    with_export_columns(ready, make_settings, "invoice_number,nope")
    ready.core.start_session(ready.clock.now())
    waits = []

    def wait(seconds):
        waits.append(seconds)
        return ready.clock.wait(seconds)

    ready.core.run_session.run_pending(wait)
    status = ready.core.session_status()
    assert status.state is SessionState.FAILED
    assert status.detail == "FakeQueryError: column v.nope does not exist"
    assert ready.store.export_queries == 4  # the first try and 3 retries
    first = ready.core.run_session.config.error_backoff  # before the first retry; three times longer each retry
    assert waits == [first, 3 * first, 9 * first]
    [mail] = ready.store.mails("session-failed")
    assert "column v.nope does not exist" in mail.text
    assert ready.core.close_session(ready.clock.now()).state is SessionState.CLOSED  # failed: only Close is left


def test_an_error_that_goes_away_is_retried_and_the_session_completes(ready):
    ready.importer_confirms()
    ready.store.broken_view = "could not extend file: No space left on device"

    def disk_freed(seconds):
        ready.store.broken_view = None
        return ready.clock.wait(seconds)

    ready.core.start_session(ready.clock.now())
    ready.core.run_session.run_pending(disk_freed)
    assert ready.core.session_status().state is SessionState.COMPLETED
    assert ready.store.mails("session-failed") == []


def test_tries_are_counted_durably_so_a_worker_that_dies_every_time_does_not_loop_forever(ready):
    """The process dies at the same line each time (a crash, the OOM killer) and is restarted."""
    ready.core.start_session(ready.clock.now())
    for _ in range(4):
        ready.store.die_during_export_after = 0
        with pytest.raises(WorkerKilled):
            ready.work()
        assert ready.core.session_status().state is SessionState.RUNNING
    ready.store.die_during_export_after = 0
    ready.work()
    status = ready.core.session_status()
    assert status.state is SessionState.FAILED and "stopped 4 times" in status.detail
    assert len(ready.store.mails("session-failed")) == 1


def test_a_worker_that_dies_after_errors_fails_the_session_naming_the_last_error(ready):
    """The process dies in the backoff after each of three errors, then once more mid-export (each
    time restarted): the session fails after 4 tries, and its reason still names the error seen."""
    ready.core.start_session(ready.clock.now())
    ready.store.broken_view = "could not extend file: No space left on device"

    def killed_in_the_backoff(seconds):
        raise WorkerKilled("killed while waiting to retry")

    for _ in range(3):
        with pytest.raises(WorkerKilled):
            ready.core.run_session.run_pending(killed_in_the_backoff)
    ready.store.broken_view = None
    ready.store.die_during_export_after = 0
    with pytest.raises(WorkerKilled):
        ready.work()
    ready.work()
    status = ready.core.session_status()
    assert status.state is SessionState.FAILED and "stopped 4 times" in status.detail
    assert "No space left on device" in status.detail
    [mail] = ready.store.mails("session-failed")
    assert "No space left on device" in mail.text


def test_an_outage_gives_back_only_the_try_it_interrupted(ready):
    """Try 1 ends in an unexpected error; try 2 is cut by a database outage: that try is given
    back, the error's is not, so the outage cannot buy an error a fourth retry."""
    ready.importer_confirms()
    lines_read = []

    def disk_full_then_database_down(index):
        lines_read.append(index)
        if len(lines_read) == 1:
            raise OSError(28, "No space left on device")
        if len(lines_read) == 2:
            ready.store.available = False

    def wait(seconds):
        ready.store.available = True
        return ready.clock.wait(seconds)

    ready.store.on_export_line = disk_full_then_database_down
    ready.core.start_session(ready.clock.now())
    ready.core.run_session.run_pending(wait)
    status = ready.core.session_status()
    assert status.state is SessionState.COMPLETED and status.tries == 2


def test_a_worker_shut_down_cleanly_does_not_use_up_a_try(ready):
    ready.core.start_session(ready.clock.now())
    for _ in range(6):  # six restarts of the service while it watches the remote log
        assert ready.core.run_session.run_pending(lambda seconds: True) == 1
        assert ready.core.session_status().state is SessionState.RUNNING
    ready.remote_log.append("importer-20261126.log", "Spedizioni20261126_6.txt: 6 records read")
    ready.work()
    assert ready.core.session_status().state is SessionState.COMPLETED


def test_an_unexpected_error_in_a_poll_still_runs_the_no_file_alert_which_names_it(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.store.broken_view = 'relation "public.invoice_view" does not exist'
    report = world.poll("2026-11-26T19:00")
    assert report.no_file_alert is True
    [mail] = world.store.mails("no-file")
    assert 'relation "public.invoice_view" does not exist' in mail.text and VALID_SAMPLE.name in mail.text
    assert str(escape('relation "public.invoice_view" does not exist')) in mail.html
    assert world.inbound.files == {VALID_SAMPLE.name: VALID_SAMPLE.read_bytes()}  # kept for the next poll
    assert world.store.data.files == []
    world.store.broken_view = None
    assert world.poll("2026-11-26T19:30").imported == [VALID_SAMPLE.name]


def test_an_unexpected_error_on_one_file_does_not_end_the_poll_of_the_others(world):
    """One file breaks the parser's caller (here: the archive), the other day's file is still seen."""
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.inbound.files["Letture20261125083015123_9.txt"] = VALID_SAMPLE.read_bytes()
    world.store.broken_view = "server closed the connection unexpectedly"
    report = world.poll("2026-11-26T10:00")
    assert report.other_days == ["Letture20261125083015123_9.txt"]
    assert report.failed and "server closed the connection unexpectedly" in report.describe()


def test_the_poll_logs_the_traceback_of_an_unexpected_error(world, caplog):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.store.broken_view = "division by zero"
    world.poll("2026-11-26T10:00")
    [record] = [r for r in caplog.records if "division by zero" in r.getMessage()]
    assert record.exc_info is not None and record.levelname == "ERROR"


def test_a_database_outage_while_the_session_runs_is_waited_out_not_counted_as_a_try(ready):
    """An outage is not a bug (SPEC §5 counts tries for unexpected errors): the worker waits for a
    flapping database, however often it comes and goes, and finishes the session once it is back."""
    ready.core.start_session(ready.clock.now())
    ready.outbound.on_upload = lambda name, data: None  # the importer confirms later, see below
    waits = []

    def the_database_is_down_for_a_while(seconds):
        waits.append(seconds)
        # From the second wait to the 40th the database is down, but for a moment every fourth wait.
        ready.store.available = not (2 <= len(waits) <= 40 and len(waits) % 4)
        if len(waits) == 42:
            ready.remote_log.append(LOG, "Spedizioni20261126_6.txt: 6 records read")
        return ready.clock.wait(seconds)

    for _ in range(60):  # the runner's worker loop: an escaped error is logged, then it goes round
        try:
            ready.core.run_session.run_pending(the_database_is_down_for_a_while)
        except DatabaseUnavailable:
            the_database_is_down_for_a_while(2)
            continue
        if ready.store.data.sessions[DAY].state is not SessionState.RUNNING:
            break
    ready.store.available = True
    status = ready.core.session_status()
    assert status.state is SessionState.COMPLETED, status.detail
    assert status.tries == 1


def test_a_database_outage_while_watching_does_not_extend_the_remote_log_timeout(ready):
    """The importer never answers: the session fails once the timeout has passed since the watch
    began, however the worker had to start over after a database outage meanwhile."""
    ready.core.start_session(ready.clock.now())
    timeout = ready.core.settings.remote_log_timeout
    began: list = []
    waits = []

    def the_database_goes_away_once_while_watching(seconds):
        waits.append(seconds)
        if ready.store.data.sessions[DAY].phase is SessionPhase.WATCHING and not began:
            began.append(ready.clock.monotonic())
        ready.store.available = len(waits) != 20  # 5 minutes into the watch
        return ready.clock.wait(seconds)

    for _ in range(5):  # the runner's worker loop
        try:
            ready.core.run_session.run_pending(the_database_goes_away_once_while_watching)
        except DatabaseUnavailable:
            the_database_goes_away_once_while_watching(2)
            continue
        if ready.store.data.sessions[DAY].state is not SessionState.RUNNING:
            break
    status = ready.core.session_status()
    assert status.state is SessionState.FAILED and "no confirmation" in status.detail
    assert ready.clock.monotonic() - began[0] <= timeout + 60
