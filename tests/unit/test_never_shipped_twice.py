"""Never shipped twice (SPEC §5): Close during the upload, and a worker resumed after the rename."""

from __future__ import annotations

import datetime as dt
import logging
import re

import pytest

from tests.conftest import VALID_SAMPLE
from tests.fakes import WorkerKilled
from warehouse_core.model import Delivery, InvoiceStatus, SessionPhase, SessionState
from warehouse_core.usecases.sessions import CloseSession

DAY = dt.date(2026, 11, 26)
EXPORT = "Spedizioni20261126_6.txt"
LOG = "importer-20261126.log"
SHIPPED = {"600000001", "600000002", "600000005", "600000006", "600000007", "600000008"}


@pytest.fixture
def running(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.core.start_session(world.clock.now())
    return world


def close(world):
    world.core.close_session(world.clock.now())


def session(world):
    with world.store.unit_of_work() as uow:
        return uow.session(DAY)


def exported(world):
    return {number for number, day in world.store.data.exported if day == DAY}


def next_days_statuses(world):
    """The same invoices in the next day's file: which of them count as valid then."""
    world.inbound.files["Letture20261127080000000_9.txt"] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-27T08:00")
    with world.store.unit_of_work() as uow:
        uow.refresh_invoice_statuses(dt.date(2026, 11, 27))
        return set(uow.invoices_with_status(dt.date(2026, 11, 27), InvoiceStatus.VALID))


# --- Close before the rename: nothing reaches the consumer, nothing is recorded -------------


def test_close_between_upload_tries_stops_and_removes_the_temporary_file(running):
    running.outbound.refuse_rename_next = 1  # the first try leaves its temporary file behind

    def operator_closes_during_the_backoff(seconds):
        close(running)
        return running.clock.wait(seconds)

    running.core.run_session.run_pending(operator_closes_during_the_backoff)
    assert running.core.session_status().state is SessionState.CLOSED
    assert running.outbound.attempts == 1 and running.outbound.files == {}
    assert exported(running) == set() and next_days_statuses(running) == SHIPPED


def test_close_while_the_file_is_stored_stops_before_the_rename(running):
    running.outbound.on_stored = lambda name: close(running)
    running.work()
    assert running.core.session_status().state is SessionState.CLOSED
    assert running.outbound.files == {}  # no final file, no temporary file
    assert exported(running) == set()
    assert running.store.mails("session-completed") == [] and running.store.mails("session-failed") == []


# --- Close after the rename: the consumer may have the file, so its invoices are exported --------


def test_close_right_after_the_rename_records_the_invoices_as_exported(running):
    running.outbound.on_upload = lambda name, data: close(running)
    running.work()
    status = running.core.session_status()
    assert status.state is SessionState.CLOSED and "delivered" in status.detail and EXPORT in status.detail
    assert list(running.outbound.files) == [EXPORT]
    assert exported(running) == SHIPPED
    assert next_days_statuses(running) == set()  # never valid again


def test_close_while_the_worker_watches_the_log_records_the_invoices_as_exported(running, caplog):
    closes = []

    def close_at_the_first_wait(seconds):
        if not closes:
            closes.append(close(running))
        return running.clock.wait(seconds)

    running.core.run_session.run_pending(close_at_the_first_wait)
    status = running.core.session_status()
    assert status.state is SessionState.CLOSED and "delivered" in status.detail
    assert exported(running) == SHIPPED and next_days_statuses(running) == set()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []  # a close is no crash


def test_close_while_watching_with_no_worker_alive_records_the_invoices_as_exported(running):
    running.core.run_session.run_pending(lambda seconds: True)  # the worker stops while watching
    assert running.core.session_status().phase is SessionPhase.WATCHING
    closed = running.core.close_session(running.clock.now())
    assert closed.state is SessionState.CLOSED and "delivered" in closed.detail and EXPORT in closed.detail
    assert exported(running) == SHIPPED
    assert running.work() == 0


def test_close_before_the_upload_records_nothing(running):
    running.store.on_export_line = lambda index: close(running) if index == 0 else None
    running.work()
    assert running.core.session_status().detail is None
    assert exported(running) == set() and running.outbound.files == {}


# --- A worker resumed in the upload phase -----------------------------------------------------


def test_a_worker_resumed_after_the_rename_does_not_upload_again_and_sees_the_first_confirmation(running):
    deaths = []

    def importer_confirms_then_the_worker_dies(name, data):
        running.remote_log.append(LOG, "{}: {} records read".format(name, data.count(b"\n")))
        if not deaths:
            deaths.append(name)
            raise WorkerKilled("killed after the rename, before phase=watching was committed")

    running.outbound.on_upload = importer_confirms_then_the_worker_dies
    with pytest.raises(WorkerKilled):
        running.work()
    assert running.core.session_status().phase is SessionPhase.RENAMING  # committed before the rename
    running.work()
    status = running.core.session_status()
    assert status.state is SessionState.COMPLETED
    assert running.outbound.attempts == 1


def test_a_worker_resumed_before_the_rename_uploads_the_file(running):
    running.importer_confirms()
    deaths = []

    def killed_once(name):
        if not deaths:
            deaths.append(name)
            raise WorkerKilled("killed during the STOR")

    running.outbound.on_stored = killed_once
    with pytest.raises(WorkerKilled):
        running.work()
    assert EXPORT not in running.outbound.files
    running.work()
    assert running.core.session_status().state is SessionState.COMPLETED
    assert running.outbound.attempts == 2 and list(running.outbound.files) == [EXPORT]


def test_a_resumed_worker_replaces_a_final_file_of_another_size(running):
    running.importer_confirms()
    deaths = []

    def killed_once(name):
        if not deaths:
            deaths.append(name)
            running.outbound.files[name] = b"600000001|a stale file of the same name\n"
            raise WorkerKilled("killed during the STOR")

    running.outbound.on_stored = killed_once
    with pytest.raises(WorkerKilled):
        running.work()
    running.work()
    assert running.core.session_status().state is SessionState.COMPLETED
    assert running.outbound.files[EXPORT].count(b"\n") == 6 and running.outbound.attempts == 2


def test_close_while_the_worker_lies_dead_after_the_rename_records_the_invoices_as_exported(running):
    """Found by test_day_in_the_life: the worker died between the rename and phase=watching, and
    the operator closed before any worker came back. The consumer has the file: its invoices must
    not be valid again the next day."""

    def the_worker_dies_after_the_rename(name, data):
        raise WorkerKilled("killed after the rename, before phase=watching was committed")

    running.outbound.on_upload = the_worker_dies_after_the_rename
    with pytest.raises(WorkerKilled):
        running.work()
    close(running)
    detail = running.core.session_status().detail or ""
    assert "delivered" in detail and EXPORT in detail
    assert exported(running) == SHIPPED and next_days_statuses(running) == set()


def test_close_while_the_worker_lies_dead_before_the_rename_records_nothing_and_removes_the_temporary_file(running):
    def the_worker_dies_with_the_file_stored(name):
        raise WorkerKilled("killed after the STOR, before the rename")

    running.outbound.on_stored = the_worker_dies_with_the_file_stored
    with pytest.raises(WorkerKilled):
        running.work()
    close(running)
    assert running.core.session_status().detail is None
    assert running.outbound.files == {}
    assert exported(running) == set() and next_days_statuses(running) == SHIPPED


def the_worker_dies_after_the_rename(world):
    world.outbound.on_upload = lambda name, data: (_ for _ in ()).throw(WorkerKilled("killed after the rename"))
    with pytest.raises(WorkerKilled):
        world.work()


def test_close_after_the_rename_while_the_server_cannot_be_asked_is_settled_by_the_runner_later(running):
    """Close commits first and asks after: the server does not answer, so the day says it is being
    checked, its delivery is unknown and its invoices are held (the ledger: as if exported), and
    the runner's next round, once the server answers, records the delivery."""
    the_worker_dies_after_the_rename(running)
    running.outbound.unreachable = True
    closed = running.core.close_session(running.clock.now())
    assert closed.state is SessionState.CLOSED and closed.phase is SessionPhase.SETTLING
    assert "being checked" in closed.detail and EXPORT in closed.detail
    assert closed.delivery is Delivery.UNKNOWN and exported(running) == SHIPPED
    running.work()  # the server still does not answer: still being checked
    assert running.core.session_status().phase is SessionPhase.SETTLING
    running.outbound.unreachable = False
    running.work()
    status = running.core.session_status()
    assert status.state is SessionState.CLOSED and "delivered" in status.detail
    assert exported(running) == SHIPPED and next_days_statuses(running) == set()


def test_close_with_no_outbound_server_to_ask_leaves_the_settling_to_the_runner(running):
    the_worker_dies_after_the_rename(running)
    closed = CloseSession(store=running.store)(running.clock.now())
    assert closed.phase is SessionPhase.SETTLING and exported(running) == SHIPPED  # held
    running.work()
    assert "delivered" in running.core.session_status().detail and exported(running) == SHIPPED
    assert running.core.session_status().delivery is Delivery.YES


def test_settling_a_close_twice_records_it_once(running):
    from warehouse_core.usecases.delivery import settle as settle_closed_rename

    the_worker_dies_after_the_rename(running)
    running.outbound.unreachable = True
    close(running)
    running.outbound.unreachable = False
    assert settle_closed_rename(running.store, running.outbound, DAY)
    events = len(running.store.data.events)
    assert settle_closed_rename(running.store, running.outbound, DAY)  # settled: nothing more
    assert len(running.store.data.events) == events and exported(running) == SHIPPED


# --- A rename whose reply was lost -------------------------------------------------------------


def test_a_lost_rename_reply_is_not_followed_by_a_second_upload(running):
    running.importer_confirms()
    running.outbound.lose_rename_reply_next = 1
    running.work()
    status = running.core.session_status()
    assert status.state is SessionState.COMPLETED
    assert status.tries == 1  # settled by the upload's own next try, not as an unexpected error
    assert running.outbound.attempts == 1 and list(running.outbound.files) == [EXPORT]
    assert exported(running) == SHIPPED


def test_close_after_a_lost_rename_reply_records_the_invoices_as_exported(running):
    running.outbound.lose_rename_reply_next = 1

    def operator_closes_during_the_backoff(seconds):
        close(running)
        return running.clock.wait(seconds)

    running.core.run_session.run_pending(operator_closes_during_the_backoff)
    status = running.core.session_status()
    assert status.state is SessionState.CLOSED and "delivered" in (status.detail or "")
    assert list(running.outbound.files) == [EXPORT] and running.outbound.attempts == 1
    assert exported(running) == SHIPPED and next_days_statuses(running) == set()


# --- A worker that lost its claim (the database restarted) -------------------------------------


def test_a_worker_that_lost_its_claim_does_not_rename_and_the_next_round_delivers_once(running):
    """After a database restart another worker may hold the session: the rename, which cannot be
    undone, waits for a worker that holds it."""
    running.importer_confirms()

    def the_database_restarts(name):
        running.store.claims_lost = True

    running.outbound.on_stored = the_database_restarts
    running.work()
    assert running.core.session_status().state is SessionState.RUNNING
    # No final file; the temporary one stays: another worker may hold the session and that file now.
    assert list(running.outbound.files) == [running.outbound.temporary(EXPORT)]
    running.outbound.on_stored = None
    running.store.claims_lost = False
    running.work()
    assert running.core.session_status().state is SessionState.COMPLETED
    assert list(running.outbound.files) == [EXPORT] and running.outbound.attempts == 2


# --- A consumer that takes the file away; a Close during the rename -----------------------------


def the_consumer_takes_the_file_then_the_worker_dies(world):
    def take_and_die(name, data):
        del world.outbound.files[name]  # a drop folder: the importer moves what it read
        raise WorkerKilled("killed after the rename, before phase=watching was committed")

    world.outbound.on_upload = take_and_die


def test_close_after_the_consumer_took_the_file_and_the_worker_died_records_the_invoices(running):
    the_consumer_takes_the_file_then_the_worker_dies(running)
    with pytest.raises(WorkerKilled):
        running.work()
    running.exports.files.clear()  # Close needs nothing of the worker's disk (the web may run elsewhere)
    close(running)
    assert "delivered" in (running.core.session_status().detail or "")
    assert exported(running) == SHIPPED and next_days_statuses(running) == set()


def test_a_worker_resumed_after_the_consumer_took_the_file_does_not_upload_again(running):
    the_consumer_takes_the_file_then_the_worker_dies(running)
    with pytest.raises(WorkerKilled):
        running.work()
    running.outbound.on_upload = None
    running.remote_log.append(LOG, "{}: 6 records read".format(EXPORT))
    running.work()
    assert running.core.session_status().state is SessionState.COMPLETED
    assert running.outbound.attempts == 1


def test_close_between_the_check_and_the_rename_sets_the_temporary_file_aside_first(running):
    """Close finds the session in phase renaming with the rename not done yet: setting the
    temporary file aside wins, the worker's rename finds nothing, and nothing was delivered."""
    running.outbound.on_renaming = lambda name: close(running)
    running.work()
    status = running.core.session_status()
    assert status.state is SessionState.CLOSED and "delivered" not in status.detail
    assert "never saw it" in status.detail
    assert running.outbound.files == {} and running.outbound.attempts == 1
    assert exported(running) == set() and next_days_statuses(running) == SHIPPED


def test_close_while_the_server_cannot_be_asked_then_the_rename_goes_through_with_its_reply_lost(running):
    """Close during the rename, the server not answering Close: the worker's rename then goes
    through and its reply is lost; the worker finds the session closed and leaves it to Close. The
    runner, once the server answers, finds the file renamed and records the delivery."""

    def close_while_unreachable(name):
        running.outbound.unreachable = True
        close(running)
        running.outbound.unreachable = False

    running.outbound.on_renaming = close_while_unreachable
    running.outbound.lose_rename_reply_next = 1
    running.work()
    assert running.core.session_status().phase is SessionPhase.SETTLING
    running.work()  # the runner's next round
    status = running.core.session_status()
    assert status.state is SessionState.CLOSED and "delivered" in (status.detail or "")
    assert exported(running) == SHIPPED and next_days_statuses(running) == set()


def test_a_refused_rename_over_an_older_file_of_the_same_size_is_tried_again(running):
    """Some servers refuse RNTO over an existing file: the temporary file stays, so the rename did
    not go through, whatever the final name holds."""
    running.importer_confirms()
    running.outbound.refuse_rename_next = 1

    def an_older_file_of_the_same_size_is_there(name):
        running.outbound.files[name] = b"x" * len(running.outbound.files[running.outbound.temporary(name)])

    running.outbound.on_stored = an_older_file_of_the_same_size_is_there
    running.work()
    assert running.core.session_status().state is SessionState.COMPLETED
    assert running.outbound.attempts == 2


# --- Found by the second review: a refused rename, a lost reply on the last try, Close as a fence ---


def test_a_refused_rename_then_close_during_the_next_store_records_nothing(running):
    running.outbound.refuse_rename_next = 1
    stored = []

    def the_operator_closes_during_the_second_store(name):
        stored.append(name)
        if len(stored) == 2:
            close(running)

    running.outbound.on_stored = the_operator_closes_during_the_second_store
    running.work()
    status = running.core.session_status()
    assert status.state is SessionState.CLOSED and "delivered" not in (status.detail or "")
    assert running.outbound.files == {}
    assert exported(running) == set() and next_days_statuses(running) == SHIPPED


def test_a_rename_reply_lost_on_the_last_try_is_a_delivery_not_a_failure(running):
    running.importer_confirms()
    running.outbound.fail_next = 2  # the first two tries are refused at STOR
    running.outbound.lose_rename_reply_next = 1  # the third renames, and its reply is lost
    running.work()
    assert running.core.session_status().state is SessionState.COMPLETED
    assert exported(running) == SHIPPED and next_days_statuses(running) == set()


def test_a_claim_lost_after_a_refused_rename_neither_loses_nor_fakes_the_delivery(running):
    running.importer_confirms()
    running.outbound.refuse_rename_next = 1
    stored = []

    def the_database_restarts_during_the_second_store(name):
        stored.append(name)
        if len(stored) == 2:
            running.store.claims_lost = True

    running.outbound.on_stored = the_database_restarts_during_the_second_store
    running.work()
    assert running.core.session_status().state is SessionState.RUNNING
    running.store.claims_lost = False
    running.outbound.on_stored = None
    running.work()  # the next round, with a fresh claim
    assert running.core.session_status().state is SessionState.COMPLETED
    assert list(running.outbound.files) == [EXPORT] and exported(running) == SHIPPED


def test_a_database_outage_as_the_rename_is_recorded_after_a_refused_rename_still_delivers(running):
    running.importer_confirms()
    running.outbound.refuse_rename_next = 1
    stored = []

    def the_database_goes_down_during_the_second_store(name):
        stored.append(name)
        if len(stored) == 2:
            running.store.available = False

    def the_database_is_back_at_the_next_wait(seconds):
        running.store.available = True
        return running.clock.wait(seconds)

    running.outbound.on_stored = the_database_goes_down_during_the_second_store
    running.core.run_session.run_pending(the_database_is_back_at_the_next_wait)
    assert running.core.session_status().state is SessionState.COMPLETED
    assert list(running.outbound.files) == [EXPORT] and exported(running) == SHIPPED


def test_close_while_the_worker_renames_then_dies_is_settled_by_close_itself(running):
    """Close finds the session in phase renaming: it removes the temporary file itself, so either
    the removal wins (no rename can follow) or the rename did (the removal finds nothing): Close
    knows which, whatever becomes of the worker."""
    running.outbound.on_renaming = lambda name: close(running)

    def the_worker_dies(name, data):
        raise WorkerKilled("killed after the rename, before phase=watching")

    running.outbound.on_upload = the_worker_dies
    running.work()  # Close's removal wins: the worker's RNFR finds nothing, and it stops
    status = running.core.session_status()
    assert status.state is SessionState.CLOSED and "delivered" not in (status.detail or "")
    assert running.outbound.files == {} and exported(running) == set()


def test_close_after_the_rename_finds_no_temporary_file_and_records_the_delivery(running):
    def the_worker_dies_after_the_rename(name, data):
        raise WorkerKilled("killed after the rename, before phase=watching")

    running.outbound.on_upload = the_worker_dies_after_the_rename
    with pytest.raises(WorkerKilled):
        running.work()
    assert running.core.session_status().phase is SessionPhase.RENAMING
    close(running)
    assert "delivered" in (running.core.session_status().detail or "")
    assert exported(running) == SHIPPED


def test_a_later_day_waits_for_an_earlier_unknown_delivery_and_fails_like_an_upload_when_it_stays_unknown(running):
    """Issue 18 item 1: the later day used to export the same invoices before the earlier day settled.
    An odd reply while settling is logged and asked again; the later day waits, naming the day."""
    the_worker_dies_after_the_rename(running)
    running.outbound.unreachable = True
    close(running)  # settling, the server not answering
    running.outbound.unreachable = False

    def a_server_reply_the_adapter_cannot_read(name):
        raise ValueError("invalid literal for int() with base 10: '1,234'")

    running.outbound.fence = a_server_reply_the_adapter_cannot_read
    running.inbound.files["Letture20261127080000000_9.txt"] = VALID_SAMPLE.read_bytes()
    running.poll("2026-11-27T08:00")
    running.core.start_session(running.clock.now())
    running.outbound.on_upload = lambda name, data: running.remote_log.append(
        "importer-20261127.log", "{}: {} records read".format(name, data.count(b"\n"))
    )
    running.work()
    later = running.core.session_status()  # the next day's session waited for the earlier one, then failed
    assert later.state is SessionState.FAILED and "2026-11-26" in later.detail
    assert later.export_file is None and not any("20261127" in name for name in running.outbound.files)
    with running.store.unit_of_work() as uow:
        assert uow.session(DAY).phase is SessionPhase.SETTLING  # the earlier one still to settle
        assert uow.session(DAY).delivery is Delivery.UNKNOWN
    assert exported(running) == SHIPPED  # still held: shipped at most once


# --- A day that failed after its file reached the consumer (SPEC §5: never valid again) -----------


def test_a_session_that_fails_after_the_delivery_records_the_invoices_as_exported(running):
    """The importer reported an error for the file it read: the day fails, and ops may send it again
    with `session retry --redeliver`; but the invoices reached the consumer, so a later day does
    not ship them on its own."""
    running.outbound.on_upload = lambda name, data: running.remote_log.append(
        LOG, "{}: ERROR line 1: customer unknown".format(name)
    )
    running.work()
    assert running.core.session_status().state is SessionState.FAILED
    assert exported(running) == SHIPPED and next_days_statuses(running) == set()


def test_closing_a_day_that_failed_in_the_renaming_phase_settles_the_delivery(running):
    """Every rename's reply was lost and the server stopped answering: the day failed not knowing.
    Closing it asks the server, as for a running session."""
    running.outbound.lose_rename_reply_next = 3
    running.outbound.on_upload = lambda name, data: setattr(running.outbound, "unreachable", True)
    running.work()
    assert running.core.session_status().state is SessionState.FAILED
    assert running.core.session_status().phase is SessionPhase.RENAMING
    running.outbound.unreachable = False
    close(running)
    status = running.core.session_status()
    assert status.state is SessionState.CLOSED and "delivered" in status.detail
    assert exported(running) == SHIPPED and next_days_statuses(running) == set()


def test_a_day_that_fails_in_the_renaming_phase_asks_whether_its_file_went_through(running):
    """The worker died right after the rename; every try after it fails before it gets that far
    (here the remote log cannot even be opened: a bug). The day fails in phase renaming: the server
    says the file went through, so its invoices count as exported (never valid again on a later day)."""
    the_worker_dies_after_the_rename(running)

    def a_bug_opening_the_log(path):
        raise RuntimeError("unexpected reply from the SSH server")

    running.remote_log.follow = a_bug_opening_the_log
    running.work()
    status = running.core.session_status()
    assert status.state is SessionState.FAILED and status.phase is SessionPhase.RENAMING
    assert exported(running) == SHIPPED and next_days_statuses(running) == set()


def test_an_unexpected_error_settling_at_close_still_answers_closed_and_the_runner_settles_it(running):
    the_worker_dies_after_the_rename(running)
    fence = running.outbound.fence

    def a_reply_the_adapter_cannot_read(name):
        raise ValueError("invalid literal for int() with base 10: '1,234'")

    running.outbound.fence = a_reply_the_adapter_cannot_read
    closed = running.core.close_session(running.clock.now())  # no error for the operator
    assert closed.state is SessionState.CLOSED
    assert running.core.session_status().phase is SessionPhase.SETTLING
    running.outbound.fence = fence
    running.work()
    assert "delivered" in running.core.session_status().detail and exported(running) == SHIPPED


# --- Review B, 0a: "not renamed" is concluded only once the fence set the temporary file aside ----


def test_a_rename_the_server_carries_out_late_is_never_followed_by_a_second_upload(running):
    """The RNTO times out on a stalled outbound server (no reply, the command still queued there).
    The next try asks whether it went through; right after answering that try's first question the server
    carries out the queued RNTO. "Not renamed" may only be concluded once the fence has set the
    temporary file aside, which the late RNTO cannot follow: here the fence finds nothing to set
    aside, so the rename went through and the file is not uploaded and renamed a second time."""
    temporary = running.outbound.temporary(EXPORT)
    placed = []  # each time the file was put in place under its final name

    def first_rename_stalls(_):
        running.outbound.on_renaming = None
        running.outbound.refuse_rename_next = 1  # the client's RNTO times out: no reply

    present = running.outbound.temporary_present

    def server_does_the_queued_rename_after_answering(asked):
        answer = present(asked)
        if asked == EXPORT and not placed and temporary in running.outbound.files:
            running.outbound.files[EXPORT] = running.outbound.files.pop(temporary)
            placed.append("late RNTO")
        return answer

    def consumer(file_name, data):
        placed.append("rename")
        running.remote_log.append(LOG, "{}: {} records read".format(file_name, data.count(b"\n")))

    running.outbound.on_renaming = first_rename_stalls
    running.outbound.temporary_present = server_does_the_queued_rename_after_answering
    running.outbound.on_upload = consumer
    running.work()
    assert placed == ["late RNTO"], "the same file was put in place for the consumer {} times".format(len(placed))
    assert running.outbound.attempts == 1
    assert session(running).delivery is Delivery.YES and exported(running) == SHIPPED


def test_a_worker_taking_over_a_day_in_phase_renaming_never_releases_what_the_first_worker_still_renames(running):
    """Worker A commits phase renaming and sends RNFR/RNTO to a stalled outbound server; its
    database connection dies meanwhile (a restart: its claim with it). Worker B claims the day and
    resumes it in phase renaming: before it may say "not renamed" and release the invoices, its
    fence sets A's temporary file aside, so A's RNTO, carried out late by the server, finds nothing
    to put in place. Whatever the ledger says of the day, the outbound server says the same: the
    file is in place exactly when the day holds its invoices."""
    temporary = running.outbound.temporary(EXPORT)
    late_rename = []  # what A's queued RNTO found when the server carried it out

    def b_waits(seconds):  # while B backs off, A's stalled RNTO is carried out by the server
        if not late_rename:
            found = temporary in running.outbound.files
            if found:
                running.outbound.files[EXPORT] = running.outbound.files.pop(temporary)
            late_rename.append(found)
        return running.clock.wait(seconds)

    def a_stalls_in_its_rename(name):
        running.outbound.on_renaming = None
        claim = running.store.session_locks[DAY]
        claim.release()  # A's database connection ends: its claim with it
        running.outbound.fail_next = 3  # the stalled server refuses B's uploads
        running.core.run_session.run_pending(b_waits)  # worker B, another process
        claim.acquire()
        running.outbound.refuse_rename_next = 1  # A's own RNTO reply: an error

    running.outbound.on_renaming = a_stalls_in_its_rename
    running.work()  # worker A
    after = session(running)
    assert late_rename == [False], "A's late RNTO put the file in place after B took the day over"
    assert EXPORT not in running.outbound.files
    assert after.delivery is Delivery.NO and exported(running) == set()
    assert next_days_statuses(running) == SHIPPED  # never shipped: valid for a later day, once


# --- What the session-failed alert says of the delivery (review B finding 6) ----------------------


def test_the_alert_of_a_day_failed_not_knowing_whether_its_file_arrived_says_it_may_be_there_and_is_held(running):
    """Every rename's reply is lost, then the server stops answering: the day fails in phase
    renaming, delivery unknown. The alert must not read as "nothing reached the consumer": it says
    the file may be there, its invoices are held, the service keeps asking, and what the operator
    may do (Close the day, or nothing)."""
    running.outbound.lose_rename_reply_next = 3
    running.outbound.on_upload = lambda name, data: setattr(running.outbound, "unreachable", True)
    running.work()
    assert running.core.session_status().delivery is Delivery.UNKNOWN
    [mail] = running.store.mails("session-failed")
    for body in (mail.text, " ".join(re.sub(r"<[^>]+>", " ", mail.html).split())):
        flat = " ".join(body.split())
        assert EXPORT + " may have reached the consumer" in flat and "is not known yet" in flat, flat
        assert "its invoices are held" in flat and "keeps asking the outbound server" in flat, flat
        assert "Close session" in flat and "or do nothing" in flat, flat


def the_importer_reports_an_error(world):
    world.outbound.on_upload = lambda name, data: world.remote_log.append(
        LOG, "{}: ERROR line 1: customer unknown".format(name)
    )


def every_upload_is_refused(world):
    world.outbound.fail_next = 3


@pytest.mark.parametrize(
    "failure, delivery", [(the_importer_reports_an_error, Delivery.YES), (every_upload_is_refused, None)]
)
def test_the_alert_of_a_day_whose_file_did_or_did_not_reach_the_consumer_does_not_say_it_may_have(
    running, failure, delivery
):
    """Failed after the delivery (the importer reported an error): the file is there, nothing to
    check. Failed at the upload (every STOR refused): nothing is there. Neither alert speaks of a
    file that may have reached the consumer, nor of held invoices."""
    failure(running)
    running.work()
    status = running.core.session_status()
    assert status.state is SessionState.FAILED and status.delivery is delivery
    [mail] = running.store.mails("session-failed")
    for body in (mail.text, mail.html):
        assert "may have reached" not in body and "held" not in body
        assert "nothing more is exported for this day" in " ".join(body.split())
