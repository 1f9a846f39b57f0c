"""How the text of a ``WAREHOUSE_*`` variable becomes a value: comma-separated lists, times, day
names, operators, fingerprints. Each parser also accepts the value already typed (tests and tools
build Settings from Python values) and checks it the same way."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Callable, Dict, List, Set, Tuple

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TIME = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")
# An SSH host key fingerprint as `ssh-keygen -lf` prints it: SHA256 in base64 without padding.
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}=?")
# The numbers' ranges: whether a value is allowed, and the refusal when it is not.
NUMBER_RULES: Dict[str, Tuple[Callable[[float], bool], str]] = {
    "ftp_timeout": (lambda value: value > 0, "must be a number of seconds above 0"),
    "remote_log_timeout": (lambda value: value > 0, "must be a number of seconds above 0"),
    "remote_log_interval": (lambda value: value > 0, "must be a number of seconds above 0"),
    "poll_every_minutes": (lambda value: 1 <= value <= 720, "must be between 1 and 720 minutes"),
    "max_upload_mb": (lambda value: value >= 1, "must be at least 1"),
    "archive_keep_days": (lambda value: value >= 0, "must be a number of days, 0 to keep everything"),
}


def items(value: Any) -> Any:
    """A comma-separated text as its trimmed, non-empty items; anything else as it is."""
    return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value


def columns(value: Any) -> Any:
    value = items(value)
    if not value or not all(IDENTIFIER.fullmatch(item) for item in value):
        raise ValueError("must be a comma-separated list of column names")
    return value


def recipients(value: Any) -> Any:
    value = items(value)
    if not value or not all("@" in item for item in value):
        raise ValueError("must be a comma-separated list of mail addresses")
    return value


def time_of_day(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    match = _TIME.fullmatch(value.strip())
    if match is None:
        raise ValueError("must be a time HH:MM")
    return dt.time(int(match.group(1)), int(match.group(2)))


def window(value: Any) -> Any:
    if isinstance(value, str):
        start, sep, end = value.partition("-")
        if not sep:
            raise ValueError("must be HH:MM-HH:MM")
        value = (time_of_day(start), time_of_day(end))
    if value[0] > value[1]:
        raise ValueError("must start before it ends")
    return value


def days(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    found: Set[int] = set()
    for item in filter(None, (part.strip().lower() for part in value.split(","))):
        first, sep, last = item.partition("-")
        if first not in DAY_NAMES or (sep and last not in DAY_NAMES):
            raise ValueError("must be day names such as mon-fri or mon,wed,fri")
        start = DAY_NAMES.index(first)
        end = DAY_NAMES.index(last) if sep else start
        found.update(range(start, end + 1) if start <= end else list(range(start, 7)) + list(range(end + 1)))
    if not found:
        raise ValueError("must name at least one day")
    return frozenset(found)


def operators(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    found: Dict[str, str] = {}
    for item in items(value):
        user, sep, password_hash = item.partition(":")
        if not sep or not user or not password_hash:
            raise ValueError("must be user:hash,… with werkzeug password hashes")
        found[user] = password_hash
    return found


def fingerprints(value: Any) -> Any:
    found: List[str] = []
    for item in items(value):
        if not _FINGERPRINT.fullmatch(item):
            raise ValueError("must be SHA256:… fingerprints as `ssh-keygen -lf` prints them, comma-separated")
        found.append(item.rstrip("="))
    return found
