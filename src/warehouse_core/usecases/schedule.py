"""When polls happen and when the no-file alert is due, in the configured local time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import FrozenSet, Optional, Tuple

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

    def due_poll(self, now: dt.datetime) -> Optional[dt.datetime]:
        """The scheduled poll that ``now`` owes, if any: the latest poll time (or the alert time,
        which is a poll of its own) at or before ``now`` on ``now``'s day, as long as the next poll
        time has not come. A poll the scheduler could not run at its minute (a long mail round, a
        slow server) is thus run late rather than skipped (SPEC §4), and only once: a scheduler
        that was stopped for hours does not replay the polls it missed."""
        if now.weekday() not in self.days:
            return None
        minute = now.hour * 60 + now.minute
        start, end = (t.hour * 60 + t.minute for t in self.window)
        times = list(range(start, end + 1, self.every_minutes))
        alert = self.alert_at.hour * 60 + self.alert_at.minute
        if start <= alert <= end and alert not in times:
            times.append(alert)
        passed = [t for t in sorted(times) if t <= minute]
        if not passed or minute - passed[-1] >= self.every_minutes:
            return None
        return now.replace(hour=passed[-1] // 60, minute=passed[-1] % 60, second=0, microsecond=0)

    def alert_due(self, now: dt.datetime) -> bool:
        return self.in_window(now) and now.time() >= self.alert_at and now.date() not in self.holidays
