"""When polls happen and when the no-file alert is due, in the configured local time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import FrozenSet, Tuple

from warehouse_core.holidays import Holidays


@dataclass(frozen=True)
class PollSchedule:
    window: Tuple[dt.time, dt.time]
    days: FrozenSet[int]
    every_minutes: int
    alert_at: dt.time
    # No file is expected on these days: the poll runs as usual, the no-file alert does not.
    holidays: Holidays = field(default_factory=Holidays)

    def in_window(self, now: dt.datetime) -> bool:
        """Whether ``now`` (local time) is on a poll day, inside the inclusive window."""
        moment = now.time().replace(second=0, microsecond=0)
        return now.weekday() in self.days and self.window[0] <= moment <= self.window[1]

    def is_poll_time(self, now: dt.datetime) -> bool:
        """Whether a scheduled poll falls in ``now``'s minute (08:00, 08:30, … by default)."""
        if not self.in_window(now):
            return False
        start = self.window[0]
        minutes = (now.hour * 60 + now.minute) - (start.hour * 60 + start.minute)
        return minutes % self.every_minutes == 0

    def alert_due(self, now: dt.datetime) -> bool:
        return self.in_window(now) and now.time() >= self.alert_at and now.date() not in self.holidays
