"""The remote log a session's watch reads (SPEC §5).

- **Past midnight.** When the log's path holds ``{date}``, the consumer writes each day's lines
  into that day's log: a watch that runs past midnight reads the log of its own day and the log of
  the current day.
- **Only lines written after its own upload.** Before the rename the watch notes where each log
  ends (its *positions*); they are stored with the session, so that a resumed worker, in this
  process or another, reads from the same place. A line the consumer wrote for an earlier upload
  of the same file name (``session retry --redeliver``) is then never taken for this one's. A log
  first read after the rename (the next day's) is read from its start: all of it came later.
  Without positions (the log could not be read before the rename) the logs are read from the start.
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
        """The session's day's log, then the current day's when it is another file."""
        own = log_path(self.template, self.day)
        current = log_path(self.template, self.clock.now().date())
        return [own] if current == own else [own, current]

    def _follower(self, path: str) -> LogFollower:
        follower = self._followers.get(path)
        if follower is None:
            follower = self._stack.enter_context(self.remote_log.follow(path))
            if self.positions is not None:
                follower.start_at(self.positions.get(path, 0))
            self._followers[path] = follower
        return follower

    def mark(self) -> Dict[str, int]:
        """Where each log ends now: the watch reads what comes after. Raises TransferError."""
        positions = {path: self._follower(path).skip_existing() for path in self.paths()}
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
