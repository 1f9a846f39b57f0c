"""The watch of the remote log (SPEC §5): only lines written after the session's own rename
confirm it, also for a resumed worker (issue 18, item 9), and a watch that runs past midnight
reads the log of its own day and of the current day when the path holds {date} (item 7), and
every log it noted a position in at its rename, with the next day's (review A, finding 7)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import VALID_SAMPLE, at
from tests.fakes import WorkerKilled
from warehouse_core.model import SessionPhase, SessionState

DAY = dt.date(2026, 11, 26)
EXPORT = "Spedizioni20261126_6.txt"
LOG = "importer-20261126.log"
NEXT_LOG = "importer-20261127.log"
RENAME_DAYS_LOG = "importer-20261128.log"
AFTER_RENAME_LOG = "importer-20261129.log"


def ready_at(world, when):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll(when)
    assert world.core.session_status().state is SessionState.READY
    return world


def status(world):
    return world.store.data.sessions[DAY]


def test_a_line_written_for_an_earlier_upload_of_the_same_name_while_this_one_uploads_does_not_confirm_it(world):
    # After session retry --redeliver: the consumer logs its line for the earlier upload while the
    # new file is being stored, before its rename. That line is not this upload's confirmation.
    ready_at(world, "2026-11-26T10:00")
    world.outbound.on_stored = lambda name: world.remote_log.append(LOG, "{}: 6 records read".format(name))
    world.core.start_session(world.clock.now())
    world.core.run_session.run_pending(lambda seconds: seconds > 0)  # stops at the first wait
    assert status(world).state is SessionState.RUNNING and status(world).phase is SessionPhase.WATCHING
    world.remote_log.append(LOG, "{}: 6 records read".format(EXPORT))  # its own line
    world.work()
    assert status(world).state is SessionState.COMPLETED


def test_the_positions_at_the_rename_are_stored_and_a_resumed_worker_reads_from_them(world):
    ready_at(world, "2026-11-26T10:00")
    world.remote_log.append(LOG, "older.txt: 1 records read")
    world.outbound.on_stored = lambda name: world.remote_log.append(LOG, "{}: 5 records read".format(name))
    world.core.start_session(world.clock.now())
    world.core.run_session.run_pending(lambda seconds: seconds > 0)  # the worker stops while watching
    assert status(world).log_positions == {LOG: 2}
    # A new worker (another process) resumes the watch: the earlier upload's line, though it names
    # the file with another count, is not read; nor would a matching one be.
    world.remote_log.append(LOG, "{}: 6 records read".format(EXPORT))
    world.work()
    assert status(world).state is SessionState.COMPLETED, status(world).detail


def test_a_worker_resumed_after_its_rename_reads_from_the_stored_positions(world):
    ready_at(world, "2026-11-26T10:00")
    world.outbound.on_stored = lambda name: world.remote_log.append(LOG, "{}: ERROR earlier".format(name))

    def die_after_the_rename(name, data):
        raise WorkerKilled()

    world.outbound.on_upload = die_after_the_rename
    world.core.start_session(world.clock.now())
    with pytest.raises(WorkerKilled):
        world.work()
    assert status(world).phase is SessionPhase.RENAMING
    world.outbound.on_upload = None
    world.remote_log.append(LOG, "{}: 6 records read".format(EXPORT))
    world.work()  # resumed: the file is in place, not uploaded again; the earlier ERROR is not read
    assert status(world).state is SessionState.COMPLETED, status(world).detail
    assert world.outbound.attempts == 1


def test_a_watch_past_midnight_reads_the_log_of_the_current_day_too(world):
    ready_at(world, "2026-11-26T19:30")
    world.clock.set(at("2026-11-26T23:59:50"))
    world.core.start_session(world.clock.now())

    def wait(seconds):
        world.clock.advance(seconds)
        if world.clock.now().date() > DAY and not world.remote_log.logs.get(NEXT_LOG):
            world.remote_log.append(NEXT_LOG, "{}: 6 records read".format(EXPORT))
        return False

    world.core.run_session.run_pending(wait)
    assert status(world).state is SessionState.COMPLETED, status(world).detail


def test_a_watch_past_midnight_also_hears_an_error_in_the_log_of_the_current_day(world):
    ready_at(world, "2026-11-26T19:30")
    world.clock.set(at("2026-11-26T23:59:50"))
    world.core.start_session(world.clock.now())

    def wait(seconds):
        world.clock.advance(seconds)
        if world.clock.now().date() > DAY and not world.remote_log.logs.get(NEXT_LOG):
            world.remote_log.append(NEXT_LOG, "{}: ERROR line 3".format(EXPORT))
        return False

    world.core.run_session.run_pending(wait)
    assert status(world).state is SessionState.FAILED and "error" in status(world).detail


def test_without_date_in_the_path_one_log_is_read_past_midnight(make_world):
    world = make_world(remote_log_path="importer.log")
    ready_at(world, "2026-11-26T19:30")
    world.clock.set(at("2026-11-26T23:59:50"))
    world.core.start_session(world.clock.now())

    def wait(seconds):
        world.clock.advance(seconds)
        if world.clock.now().date() > DAY and not world.remote_log.logs.get("importer.log"):
            world.remote_log.append("importer.log", "{}: 6 records read".format(EXPORT))
        return False

    world.core.run_session.run_pending(wait)
    assert status(world).state is SessionState.COMPLETED
    assert set(world.remote_log.logs) == {"importer.log"}


def failed_before_its_rename_then_retried_late_on_the_28th(world):
    """The 26th fails before its rename (the outbound server down); ops retry it, and an
    operator starts it on the 28th, one second before midnight."""
    from tests.unit.test_delivery_ledger import retry

    ready_at(world, "2026-11-26T10:00")
    world.core.start_session(world.clock.now())
    world.outbound.fail_next = 3
    world.work()
    assert status(world).state is SessionState.FAILED and status(world).delivery is None
    world.clock.set(at("2026-11-28T23:59:59"))
    retry(world)
    world.core.start_session(world.clock.now(), actor="anna", day=DAY)


def test_a_watch_past_midnight_reads_the_log_of_the_day_it_renamed_on(world):
    """Review A, finding 7: the rename goes through at 23:59:59 on the 28th and the consumer logs
    its line in the 28th's log at once; the worker's first look is at 00:00:01 on the 29th. The
    28th's log is neither the session's day's nor the current day's, yet it holds the line."""
    failed_before_its_rename_then_retried_late_on_the_28th(world)

    def the_consumer_confirms_just_before_midnight(name, data):
        world.remote_log.append(RENAME_DAYS_LOG, "{}: {} records read".format(name, data.count(b"\n")))
        world.clock.set(at("2026-11-29T00:00:01"))  # the worker's first look comes after midnight

    world.outbound.on_upload = the_consumer_confirms_just_before_midnight
    world.work()
    assert status(world).state is SessionState.COMPLETED, status(world).detail


def killed_after_its_rename_on_the_28th(world, consumer):
    failed_before_its_rename_then_retried_late_on_the_28th(world)
    world.remote_log.append(RENAME_DAYS_LOG, "{}: ERROR earlier upload".format(EXPORT))

    def killed_after_the_rename(name, data):
        raise WorkerKilled()

    world.outbound.on_upload = killed_after_the_rename
    attempts = world.outbound.attempts
    with pytest.raises(WorkerKilled):
        world.work()
    world.outbound.on_upload = None
    assert status(world).phase is SessionPhase.RENAMING
    assert status(world).log_positions == {LOG: 0, RENAME_DAYS_LOG: 1}
    consumer()
    world.clock.set(at("2026-12-02T10:00"))  # the worker comes back days later
    world.work()
    return world.outbound.attempts - attempts


def test_a_worker_resumed_days_later_reads_the_log_of_the_day_it_renamed_on(world):
    def confirms_in_the_28ths_log():
        world.remote_log.append(RENAME_DAYS_LOG, "{}: 6 records read".format(EXPORT))

    uploads = killed_after_its_rename_on_the_28th(world, confirms_in_the_28ths_log)
    assert status(world).state is SessionState.COMPLETED, status(world).detail
    assert uploads == 1  # not uploaded again; the earlier ERROR was not read


def test_a_worker_resumed_days_later_reads_the_log_of_the_day_after_its_rename(world):
    # The consumer takes the file a few minutes later, after midnight: its line is in the 29th's log.
    def confirms_in_the_29ths_log():
        world.remote_log.append(AFTER_RENAME_LOG, "{}: 6 records read".format(EXPORT))

    killed_after_its_rename_on_the_28th(world, confirms_in_the_29ths_log)
    assert status(world).state is SessionState.COMPLETED, status(world).detail


def test_a_watch_longer_than_a_day_keeps_reading_a_log_it_has_read(make_world):
    """With a timeout above a day the watch passes two midnights: the line the consumer writes in
    the 28th's log after the last look of the 28th is read at the first look of the 29th."""
    world = make_world(remote_log_timeout=4 * 86400, remote_log_interval=600)
    ready_at(world, "2026-11-26T10:00")
    world.core.start_session(world.clock.now())

    def wait(seconds):
        before = world.clock.now()
        world.clock.advance(seconds)
        if before.date() == dt.date(2026, 11, 28) and world.clock.now().date() > before.date():
            world.remote_log.append(RENAME_DAYS_LOG, "{}: 6 records read".format(EXPORT))
        return False

    world.core.run_session.run_pending(wait)
    assert status(world).state is SessionState.COMPLETED, status(world).detail
    assert world.clock.now().date() == dt.date(2026, 11, 29)
