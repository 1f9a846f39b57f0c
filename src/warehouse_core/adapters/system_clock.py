from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from warehouse_core.clock import local


class SystemClock:
    """The machine's clock in the configured zone, or a fixed moment (``poll --at``)."""

    def __init__(self, tz: Any, fixed: Optional[dt.datetime] = None) -> None:
        self.tz = tz
        self.fixed = local(fixed, tz) if fixed is not None else None

    def now(self) -> dt.datetime:
        if self.fixed is not None:
            return self.fixed
        return dt.datetime.now(self.tz)
