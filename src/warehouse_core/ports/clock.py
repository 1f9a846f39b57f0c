from __future__ import annotations

import datetime as dt

from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, aware, in the configured time zone."""
