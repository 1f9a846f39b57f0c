"""Time zones on every supported Python."""

from __future__ import annotations

import datetime as dt
from typing import Any

try:
    from zoneinfo import ZoneInfo
except ImportError:  # Python 3.8
    from backports.zoneinfo import ZoneInfo  # type: ignore[no-redef]


def zone(name: str) -> Any:
    return ZoneInfo(name)


def local(moment: dt.datetime, tz: Any) -> dt.datetime:
    """``moment`` in ``tz``; a naive moment is taken as already local there."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=tz)
    return moment.astimezone(tz)
