"""When polls happen (SPEC §1): counted from the window's start, whatever minute it starts on."""

from __future__ import annotations

import datetime as dt

from tests.conftest import at
from warehouse_core.usecases.schedule import PollSchedule


def test_polls_are_counted_from_a_window_start_off_the_half_hour():
    schedule = PollSchedule(
        window=(dt.time(8, 10), dt.time(19, 55)), days=frozenset(range(5)), every_minutes=45, alert_at=dt.time(19, 0)
    )
    minutes = ("08:00", "08:10", "08:45", "08:55", "09:30", "09:40", "10:25", "19:55")
    polled = [minute for minute in minutes if schedule.is_poll_time(at("2026-11-26T" + minute))]
    assert polled == ["08:10", "08:55", "09:40", "10:25"]


def test_a_poll_missed_at_its_minute_is_due_late_until_the_next_one_never_skipped():
    """SPEC §4: a poll the scheduler could not run at its time runs as soon as it can."""
    schedule = PollSchedule(
        window=(dt.time(8, 0), dt.time(20, 0)), days=frozenset(range(5)), every_minutes=30, alert_at=dt.time(19, 0)
    )
    due = {t: schedule.due_poll(at("2026-11-26T" + t)) for t in ("07:59", "08:00", "08:29", "12:17", "20:00", "20:29")}
    assert due == {
        "07:59": None,
        "08:00": at("2026-11-26T08:00"),
        "08:29": at("2026-11-26T08:00"),
        "12:17": at("2026-11-26T12:00"),
        "20:00": at("2026-11-26T20:00"),
        "20:29": at("2026-11-26T20:00"),  # the window's last poll, late: still run
    }
    assert schedule.due_poll(at("2026-11-26T20:30")) is None
    assert schedule.due_poll(at("2026-11-29T10:00")) is None  # Sunday


def test_the_alert_time_is_a_poll_of_its_own_when_it_falls_between_two_polls():
    schedule = PollSchedule(
        window=(dt.time(8, 0), dt.time(20, 0)), days=frozenset(range(5)), every_minutes=30, alert_at=dt.time(19, 10)
    )
    assert schedule.due_poll(at("2026-11-26T19:09")) == at("2026-11-26T19:00")
    assert schedule.due_poll(at("2026-11-26T19:10")) == at("2026-11-26T19:10")
    assert schedule.due_poll(at("2026-11-26T19:29")) == at("2026-11-26T19:10")
    assert schedule.due_poll(at("2026-11-26T19:30")) == at("2026-11-26T19:30")
