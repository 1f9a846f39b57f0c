"""The remote log a session's watch reads (SPEC §5).

- **Past midnight.** When the log's path holds ``{date}``, the consumer writes each day's lines
  into that day's log. A watch reads, each look: the log of the session's own day; every log it
  noted a position in at its rename (the rename's day's: an earlier day retried and renamed at
  23:59:59 has its confirmation there, though the first look comes on the next day); the log of
  the day after the rename's day; every log this watch has read once (a watch longer than a day
  still reads the end of a day it looked at); and the log of the current day.
- **A resumed worker, even days later**, reads the same set but for the logs only the earlier
  process looked at: the positions are stored with the session, and the rename's day is the
  latest day whose log they name. The days between the day after the rename and the current day
  are not read: the consumer writes its line within the remote-log timeout (900 s by default,
  below a day) after the rename, so into the rename's day's log or the next day's; a line written
  later would have failed the session had its worker kept running.
- **Only lines written after its own upload.** Before the rename the watch notes where each log
  ends (its *positions*); they are stored with the session, so that a resumed worker, in this
  process or another, reads from the same place. A line the consumer wrote for an earlier upload
  of the same file name (``session retry --redeliver``) is then never taken for this one's. A log
  not noted at the rename (the next day's, the current day's) is read from its start: all of it
  came later. Without positions (the log could not be read before the rename) the logs are read
  from the start, and the rename's day is not known: the own day's and the current day's are read.
"""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import ExitStack
from typing import Any, Dict, Iterator, List, Mapping, Optional

from warehouse_core.ports import Clock, LogFollower, RemoteLog

log = logging.getLogger(__name__)


def log_path(template: str, day: dt.date) -> str:
    return template.format(date=day.strftime("%Y%m%d"))


class DayLogs:
    """The followers of a session's logs, opened as they are needed; a context manager."""

    def __init__(self, remote_log: RemoteLog, template: str, day: dt.date, clock: Clock) -> None:
        self.remote_log = remote_log
        self.template = template
        self.day = day
        self.clock = clock
        self.positions: Optional[Dict[str, int]] = None  # where each log is read from; None: its start
        self._followers: Dict[str, LogFollower] = {}
        self._stack = ExitStack()

    def __enter__(self) -> "DayLogs":
        try:
            self._follower(self.paths()[0])  # the own day's log is followed from the start, as before
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def paths(self) -> List[str]:
        """The logs read at each look, each once, in this order: the session's day's, those noted
        at the rename, the day after the rename's, those read once already, the current day's."""
        today = self.clock.now().date()
        paths = [log_path(self.template, self.day)]
        if self.positions is not None:
            paths += list(self.positions)
            renamed_on = self._rename_day(today)
            if renamed_on is not None:
                paths.append(log_path(self.template, renamed_on + dt.timedelta(days=1)))
        paths += list(self._followers)
        paths.append(log_path(self.template, today))
        return list(dict.fromkeys(paths))

    def _rename_day(self, today: dt.date) -> Optional[dt.date]:
        """The latest day from the session's day to today whose log the positions name: the day
        of the rename (the positions hold that day's log and the session's day's)."""
        assert self.positions is not None
        day = today
        while day >= self.day:
            if log_path(self.template, day) in self.positions:
                return day
            day -= dt.timedelta(days=1)
        return None

    def _follower(self, path: str) -> LogFollower:
        follower = self._followers.get(path)
        if follower is None:
            follower = self._stack.enter_context(self.remote_log.follow(path))
            if self.positions is not None:
                follower.start_at(self.positions.get(path, 0))
            self._followers[path] = follower
        return follower

    def mark(self) -> Dict[str, int]:
        """Where each log ends now (the session's day's, the current day's, and those read once
        already): the watch reads what comes after. Raises TransferError."""
        today = log_path(self.template, self.clock.now().date())
        noted = dict.fromkeys([log_path(self.template, self.day), *self._followers, today])
        positions = {path: self._follower(path).skip_existing() for path in noted}
        self.positions = dict(positions)
        return positions

    def start_at(self, positions: Optional[Mapping[str, int]]) -> None:
        """Read from ``positions`` (stored by an earlier mark), or from the start (None)."""
        self.positions = None if positions is None else dict(positions)
        for path, follower in self._followers.items():
            follower.start_at(0 if positions is None else positions.get(path, 0))

    def read_new(self) -> Iterator[str]:
        """The new lines of each log, given out as they are read. Raises TransferError."""
        for path in self.paths():
            yield from self._follower(path).read_new()
