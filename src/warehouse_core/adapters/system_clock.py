from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable, Optional

from warehouse_core.clock import local


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class SystemClock:
    """The machine's clock in the configured zone, or a fixed moment (``poll --at``).

    ``start`` (``WAREHOUSE_CLOCK_START``, a testing aid) moves the machine's clock so that it reads
    that local time now and runs on from there at the real pace, through any clock change.
    """

    def __init__(
        self,
        tz: Any,
        fixed: Optional[dt.datetime] = None,
        start: Optional[dt.datetime] = None,
        utc_now: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.tz = tz
        self.fixed = local(fixed, tz) if fixed is not None else None
        self._utc_now = utc_now
        self._offset = local(start, tz) - utc_now() if start is not None else dt.timedelta(0)

    def now(self) -> dt.datetime:
        if self.fixed is not None:
            return self.fixed
        # Moved in UTC, then shown in the zone: adding to a local time would skip or repeat an hour.
        return (self._utc_now() + self._offset).astimezone(self.tz)

    def monotonic(self) -> float:
        """Seconds for deadlines and intervals: never moved by the zone, the start offset or ntp."""
        return time.monotonic()
