"""The watch of the remote log (SPEC §5): only lines written after the session's own rename
confirm it, also for a resumed worker (issue 18, item 9), and a watch that runs past midnight
reads the log of its own day and of the current day when the path holds {date} (item 7)."""

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
