"""WAREHOUSE_HOLIDAYS (SPEC §4, §8): Italy's national holidays computed for any year, explicit
dates added to them, and the no-file alert rule that skips them."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import VALID_SAMPLE, settings_values
from warehouse_core.errors import ConfigurationError
from warehouse_core.holidays import Holidays, easter_sunday, italian_holidays
from warehouse_core.settings import load_settings, variable_name

D = dt.date


@pytest.mark.parametrize(
    "year, sunday",
    [
        (1818, D(1818, 3, 22)),  # the earliest possible
        (1943, D(1943, 4, 25)),  # the latest possible
        (2000, D(2000, 4, 23)),
        (2019, D(2019, 4, 21)),
        (2024, D(2024, 3, 31)),
        (2025, D(2025, 4, 20)),
        (2026, D(2026, 4, 5)),
        (2027, D(2027, 3, 28)),
        (2028, D(2028, 4, 16)),
        (2038, D(2038, 4, 25)),
        (2285, D(2285, 3, 22)),
    ],
)
def test_easter_sunday(year, sunday):
    assert easter_sunday(year) == sunday
    assert sunday.weekday() == 6


def italian(year, *extra):
    fixed = [(1, 1), (1, 6), (4, 25), (5, 1), (6, 2), (8, 15), (11, 1), (12, 8), (12, 25), (12, 26)]
    return {D(year, m, d) for m, d in fixed} | set(extra)


@pytest.mark.parametrize(
    "year, expected",
    [
        (2024, italian(2024, D(2024, 3, 31), D(2024, 4, 1))),
        (2025, italian(2025, D(2025, 4, 20), D(2025, 4, 21))),
        # L. 151/2025: 4 October (San Francesco) from 2026.
        (2026, italian(2026, D(2026, 4, 5), D(2026, 4, 6), D(2026, 10, 4))),
        (2027, italian(2027, D(2027, 3, 28), D(2027, 3, 29), D(2027, 10, 4))),
        (2030, italian(2030, D(2030, 4, 21), D(2030, 4, 22), D(2030, 10, 4))),
        # 1986-2000: Epiphany restored, 2 June still moved to a Sunday.
        (1990, italian(1990, D(1990, 4, 15), D(1990, 4, 16)) - {D(1990, 6, 2)}),
        # 1978-1985: neither.
        (1980, italian(1980, D(1980, 4, 6), D(1980, 4, 7)) - {D(1980, 6, 2), D(1980, 1, 6)}),
    ],
)
def test_italian_national_holidays_over_the_years(year, expected):
    assert italian_holidays(year) == frozenset(expected)


def test_easter_sunday_and_monday_are_holidays_every_year():
    calendar = Holidays.parse("it")
    for year in range(1900, 2201):
        sunday = easter_sunday(year)
        assert 22 <= (sunday - D(year, 3, 1)).days + 1 <= 56  # 22 March to 25 April
        assert sunday in calendar and sunday + dt.timedelta(days=1) in calendar
        assert sunday - dt.timedelta(days=1) not in calendar


def test_explicit_dates_add_to_the_national_ones():
    calendar = Holidays.parse(" it , 2026-12-24,2026-12-31 ")
    for day in (D(2026, 12, 24), D(2026, 12, 25), D(2026, 12, 31), D(2027, 1, 6)):
        assert day in calendar
    assert D(2026, 12, 23) not in calendar
    only_dates = Holidays.parse("2026-12-24")
    assert D(2026, 12, 24) in only_dates and D(2026, 12, 25) not in only_dates
    assert D(2026, 12, 25) not in Holidays()


@pytest.mark.parametrize("bad", ["fr", "2026-12-32", "24/12/2026", "2026-1-5", "it;2026-12-24"])
def test_a_bad_holiday_setting_stops_the_start_naming_the_key(bad):
    env = {variable_name(k): str(v) for k, v in settings_values(holidays=bad).items()}
    with pytest.raises(ConfigurationError) as caught:
        load_settings(env)
    assert "WAREHOUSE_HOLIDAYS" in str(caught.value)


def test_the_setting_defaults_to_no_holidays_and_reads_it():
    env = {variable_name(k): str(v) for k, v in settings_values().items()}
    assert D(2026, 12, 25) not in load_settings(env).holiday_calendar
    env["WAREHOUSE_HOLIDAYS"] = "it,2026-12-24"
    calendar = load_settings(env).holiday_calendar
    assert D(2026, 12, 24) in calendar and D(2026, 12, 8) in calendar


# --- the poll on a holiday (SPEC §4) -------------------------------------------------------


def test_no_no_file_alert_on_a_holiday_but_on_the_next_working_day(make_world):
    world = make_world(holidays="it")
    # Tuesday 8 December 2026 (Immacolata) is a poll day and a holiday.
    for when in ("2026-12-08T10:00", "2026-12-08T19:00", "2026-12-08T19:30", "2026-12-08T20:00"):
        report = world.poll(when)
        assert report.skipped is None and report.no_file_alert is False
    assert world.store.mails("no-file") == []
    assert world.poll("2026-12-09T19:00").no_file_alert is True
    [mail] = world.store.mails("no-file")
    assert mail.day == D(2026, 12, 9)


def test_an_explicit_date_silences_the_alert_too(make_world):
    world = make_world(holidays="2026-11-26")
    assert world.poll("2026-11-26T19:00").no_file_alert is False
    assert world.store.mails() == []


def test_a_file_that_comes_on_a_holiday_is_imported_as_usual(make_world):
    world = make_world(holidays="it")
    name = "Letture20261208083015123_9.txt"
    world.inbound.files[name] = VALID_SAMPLE.read_bytes()
    report = world.poll("2026-12-08T10:00")
    assert report.imported == [name] and report.deleted == [name]
    assert world.core.session_status(D(2026, 12, 8)).state.value == "ready"
    assert [m.event.value for m in world.store.mails()] == ["import-summary"]
