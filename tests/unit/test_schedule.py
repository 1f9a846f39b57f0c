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
