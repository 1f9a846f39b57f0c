from __future__ import annotations

import logging
import threading

import pytest
import schedule

from tests.conftest import VALID_SAMPLE, at
from warehouse_runner.jobs import guarded, mail_tick, poll_tick, run_scheduler, run_session_worker, upkeep_tick


def test_polls_happen_on_the_half_hour_inside_the_window_on_poll_days(world):
    polled = [
        t
        for t in ("07:30", "08:00", "08:15", "08:30", "12:00", "19:59", "20:00", "20:30")
        if poll_tick(world.core, at("2026-11-26T" + t))
    ]
    assert polled == ["08:00", "08:30", "12:00", "20:00"]
    assert not poll_tick(world.core, at("2026-11-29T10:00"))  # Sunday


def test_a_failing_job_is_logged_and_the_daemon_goes_on(world, caplog):
    def broken(core, now):
        raise RuntimeError("database went away")

    guarded("poll", broken, world.core)()
    assert "poll failed" in caplog.text and "database went away" in caplog.text


def test_scheduler_polls_at_start_inside_the_window_and_stops_on_request(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    stop = threading.Event()
    thread = threading.Thread(target=run_scheduler, args=(world.core, stop, schedule.Scheduler()))
    thread.start()
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert world.inbound.deleted == [VALID_SAMPLE.name]
    assert world.mailer.events() == ["import-summary"]


def test_dependency_checks_run_at_most_every_five_minutes_and_retention_once_a_day(make_world):
    from warehouse_runner.jobs import upkeep_tick

    tries = []

    def smtp_probe():
        tries.append("smtp")
        raise OSError("connection refused")

    world = make_world(archive_keep_days=30, probes={"database": lambda: tries.append("database"), "smtp": smtp_probe})
    for minute in ("10:00", "10:01", "10:04", "10:05", "10:06"):
        upkeep_tick(world.core, at("2026-11-26T" + minute))
    assert tries == ["database", "smtp", "database", "smtp"]
    with world.store.unit_of_work() as uow:
        snapshot = uow.metrics_snapshot(at("2026-11-26T10:06").date())
        cleaned = uow.last_check("cleanup")
    assert snapshot.dependencies == {"database": True, "smtp": False}
    assert cleaned == at("2026-11-26T10:00"), "the retention ran once today"
    upkeep_tick(world.core, at("2026-11-27T00:01"))
    with world.store.unit_of_work() as uow:
        assert uow.last_check("cleanup") == at("2026-11-27T00:01")


def test_the_upkeep_runs_beside_the_poll_one_round_at_a_time():
    from warehouse_runner.jobs import in_background

    started, release, rounds = threading.Event(), threading.Event(), []

    def slow_check():
        rounds.append(threading.current_thread().name)
        started.set()
        release.wait(5)

    def join_rounds():
        for thread in [t for t in threading.enumerate() if t.name == "upkeep"]:
            thread.join(5)

    start = in_background("upkeep", slow_check)
    start()  # returns at once: the round waits for its dependency in its own thread
    assert started.wait(5)
    start()  # skipped: the first round still runs
    assert not release.is_set() and rounds == ["upkeep"]
    release.set()
    join_rounds()
    start()
    join_rounds()
    assert rounds == ["upkeep", "upkeep"]


def test_while_the_database_is_down_each_tick_logs_one_error_line_naming_it_without_a_traceback(world, caplog):
    """A database that is down for an hour is expected, not a bug: one ERROR line per tick that
    says what is wrong, not a traceback a minute (SPEC §10)."""
    world.store.available = False
    for name, job in (("poll", poll_tick), ("mail delivery", mail_tick), ("upkeep", upkeep_tick)):
        caplog.clear()
        guarded(name, job, world.core)()
        [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert record.levelno == logging.ERROR and record.exc_info is None, name
        assert name in record.getMessage() and "the fake database is switched off" in record.getMessage()


def test_while_the_database_is_down_a_session_worker_round_logs_one_line_without_a_traceback(world, caplog):
    world.store.available = False
    stop = threading.Event()
    worker = threading.Thread(target=run_session_worker, args=(world.core, stop, 60.0))
    worker.start()
    try:
        for _ in range(500):  # until the first round has failed, then the worker waits its 60 s
            if any(r.levelno >= logging.WARNING for r in caplog.records):
                break
            stop.wait(0.01)
    finally:
        stop.set()
        world.core.session_wakeup.set()
        worker.join(5)
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.ERROR and record.exc_info is None
    assert "the fake database is switched off" in record.getMessage()


def test_an_unexpected_error_in_a_job_keeps_its_traceback(world, caplog):
    def broken(core, now):
        raise KeyError("a bug")

    guarded("poll", broken, world.core)()
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_a_failed_clean_up_is_not_the_days_run_it_is_tried_again_an_hour_later(make_world):
    """A clean-up that failed (a file it may not delete, the database gone mid-way) was recorded
    as the day's run: nothing was tried again before the next day."""
    from warehouse_runner.jobs import upkeep_tick

    world = make_world(archive_keep_days=30, probes={})
    old = "Letture20261015083015123_9.txt"
    world.inbound.files[old] = VALID_SAMPLE.read_bytes()
    world.poll("2026-10-15T10:00")
    world.core.close_session(world.clock.now())  # a final day: its file may go
    assert list(world.archive.files) == ["2026-10-15/" + old]
    world.archive.fail_delete = PermissionError("Permission denied")
    with pytest.raises(PermissionError):
        upkeep_tick(world.core, at("2026-11-26T00:01"))
    world.archive.fail_delete = None
    upkeep_tick(world.core, at("2026-11-26T00:30"))  # not at every tick: the upkeep runs each minute
    assert list(world.archive.files) == ["2026-10-15/" + old]
    upkeep_tick(world.core, at("2026-11-26T01:01"))
    assert list(world.archive.files) == []
    with world.store.unit_of_work() as uow:
        assert uow.last_success("cleanup") == at("2026-11-26T01:01")
    upkeep_tick(world.core, at("2026-11-26T23:59"))  # done for the day
    with world.store.unit_of_work() as uow:
        assert uow.last_check("cleanup") == at("2026-11-26T01:01")
