"""A warning that repeats is said at most once a minute, with its count (SPEC §9).

waitress logs "Task queue depth is N" for every request it queues, psycopg.pool two lines for
every failed connect, and the scheduler and session worker one error per round while a server
stays down: a busy hour would bury the one line that matters. This filter lets the first of a
kind through, drops the repeats for a minute, and lets the next one through with
"(repeated N times in the last minute)".
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Callable, Dict, Tuple

INTERVAL_SECONDS = 60.0
# Loggers whose every line (not only warnings) repeats once per request or per failed connect.
CHATTY_LOGGERS = ("psycopg.pool",)
# Libraries whose numbers are counters and timings (a queue depth, a reconnect delay): their lines
# say one thing whatever the numbers. The service's own numbers carry the decision ("try 2 of 3").
NUMBERS_ARE_NOISE = ("waitress", "psycopg")
_NUMBERS = re.compile(r"\d+")


def _of(record: logging.LogRecord, names: Tuple[str, ...]) -> bool:
    return any(record.name == name or record.name.startswith(name + ".") for name in names)


def _kind(record: logging.LogRecord) -> Tuple[str, int, str]:
    """What makes two lines "the same": logger, level and the text, with a library's numbers
    blanked (waitress's queue depth, psycopg.pool's delays change while the line says one thing)."""
    text = record.getMessage()
    if _of(record, NUMBERS_ARE_NOISE):
        text = _NUMBERS.sub("#", text)
    return record.name, record.levelno, text


class RepeatFilter(logging.Filter):
    """On a handler: warnings and errors (and every line of ``chatty`` loggers) at most once per
    ``interval`` per kind; the line let through after a quiet spell carries the count dropped."""

    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        interval: float = INTERVAL_SECONDS,
        chatty: Tuple[str, ...] = CHATTY_LOGGERS,
    ) -> None:
        super().__init__()
        self.monotonic = monotonic
        self.interval = interval
        self.chatty = chatty
        self.lock = threading.Lock()
        # kind -> (when it was last said, repeats dropped since)
        self.said: Dict[Tuple[str, int, str], Tuple[float, int]] = {}

    def _watched(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return _of(record, self.chatty)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._watched(record):
            return True
        kind = _kind(record)
        now = self.monotonic()
        with self.lock:
            last = self.said.get(kind)
            if last is not None and now - last[0] < self.interval:
                self.said[kind] = (last[0], last[1] + 1)
                return False
            self.said[kind] = (now, 0)
            if len(self.said) > 1000:  # kinds never seen again must not grow without bound
                self._forget_before(now - self.interval)
        if last is not None and last[1]:
            record.msg = "{} (repeated {} times in the last minute)".format(record.getMessage(), last[1])
            record.args = None
        return True

    def _forget_before(self, moment: float) -> None:
        for kind in [k for k, (when, _) in self.said.items() if when < moment]:
            del self.said[kind]
