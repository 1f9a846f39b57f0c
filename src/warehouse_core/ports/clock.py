from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, aware, in the configured time zone: for dates, records and mails."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps: for every deadline, interval and backoff. (Aware
        datetimes in one zone compare and add by wall clock, so across a daylight-saving change
        a deadline on them stalls an hour or ends early.)"""
