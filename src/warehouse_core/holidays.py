"""Days on which no inbound file is expected (WAREHOUSE_HOLIDAYS): explicit dates and Italy's
national holidays, computed for any year."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import FrozenSet, Set

ITALY = "it"
COUNTRIES = (ITALY,)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# Fixed-date national holidays (L. 260/1949 as amended). L. 54/1977 moved 2 June to a Sunday
# (restored from 2001 by L. 336/2000) and removed 6 January from 1978 (restored from 1986 by
# DPR 792/1985); L. 151/2025 adds 4 October from 2026.
_ITALIAN_FIXED = ((1, 1), (1, 6), (4, 25), (5, 1), (6, 2), (8, 15), (10, 4), (11, 1), (12, 8), (12, 25), (12, 26))
_ITALIAN_NOT_KEPT = {(1, 6): range(1978, 1986), (6, 2): range(1977, 2001), (10, 4): range(1977, 2026)}


def easter_sunday(year: int) -> dt.date:
    """Western (Gregorian) Easter: the anonymous Gregorian computus (Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def italian_holidays(year: int) -> FrozenSet[dt.date]:
    """Italy's national holidays of ``year``: the fixed dates in force that year, Easter Sunday and
    Easter Monday (Lunedì dell'Angelo). Regional and patron-saint days are not national: add them
    as explicit dates. (Before 1977 the list was longer; the service never looks that far back.)"""
    days: Set[dt.date] = set()
    for month, day in _ITALIAN_FIXED:
        if year not in _ITALIAN_NOT_KEPT.get((month, day), ()):
            days.add(dt.date(year, month, day))
    easter = easter_sunday(year)
    days.update((easter, easter + dt.timedelta(days=1)))
    return frozenset(days)


@dataclass(frozen=True)
class Holidays:
    """Countries whose national holidays count, plus explicit dates."""

    countries: FrozenSet[str] = frozenset()
    dates: FrozenSet[dt.date] = frozenset()

    @classmethod
    def parse(cls, text: str) -> "Holidays":
        """``it,2026-12-24,2026-12-31``: country codes and YYYY-MM-DD dates, comma-separated.
        A ValueError names the first item that is neither."""
        countries: Set[str] = set()
        dates: Set[dt.date] = set()
        for item in filter(None, (part.strip() for part in text.split(","))):
            if item.lower() in COUNTRIES:
                countries.add(item.lower())
                continue
            try:
                if not _DATE.fullmatch(item):
                    raise ValueError(item)
                dates.add(dt.date.fromisoformat(item))
            except ValueError:
                raise ValueError(
                    "must be dates YYYY-MM-DD and/or {} (Italy's national holidays), comma-separated;"
                    " {!r} is neither".format("/".join(COUNTRIES), item)
                ) from None
        return cls(countries=frozenset(countries), dates=frozenset(dates))

    def __contains__(self, day: object) -> bool:
        if not isinstance(day, dt.date):
            return False
        if isinstance(day, dt.datetime):
            day = day.date()
        if day in self.dates:
            return True
        return ITALY in self.countries and day in italian_holidays(day.year)
