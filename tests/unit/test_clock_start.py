"""WAREHOUSE_CLOCK_START, the testing aid: the service's clock starts at a given local time and runs on."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import ROME, at, settings_values
from tests.fakes import FakeStore
from warehouse_core.adapters.system_clock import SystemClock
from warehouse_core.bootstrap import bootstrap
from warehouse_core.errors import ConfigurationError
from warehouse_core.settings import load_settings

UTC = dt.timezone.utc


class RealClock:
    """The machine's clock, moved by hand."""

    def __init__(self, text: str) -> None:
        self.value = dt.datetime.fromisoformat(text).replace(tzinfo=UTC)

    def __call__(self) -> dt.datetime:
        return self.value

    def advance(self, **delta: float) -> None:
        self.value += dt.timedelta(**delta)


def environment(**values: str) -> dict:
    env = {"WAREHOUSE_" + key.upper(): str(value) for key, value in settings_values().items()}
    env.update(values)
    return env


def test_the_clock_starts_at_the_given_local_time_and_runs_on():
    machine = RealClock("2031-05-04T18:12:00")
    clock = SystemClock(ROME, start=at("2026-11-26T10:00"), utc_now=machine)
    assert clock.now() == at("2026-11-26T10:00") and clock.now().tzinfo is ROME
    machine.advance(minutes=90, seconds=5)
    assert clock.now() == at("2026-11-26T11:30:05")


def test_a_started_clock_runs_through_the_autumn_change_in_real_time():
    machine = RealClock("2020-01-01T00:00:00")
    clock = SystemClock(ROME, start=dt.datetime(2027, 10, 31, 2, 30), utc_now=machine)  # the first 02:30 (CEST)
    assert clock.now().utcoffset() == dt.timedelta(hours=2)
    machine.advance(hours=1)
    later = clock.now()  # the second 02:30 (CET): one real hour later, the same wall-clock time
    assert (later.hour, later.minute, later.utcoffset()) == (2, 30, dt.timedelta(hours=1))
    assert later.astimezone(UTC) - at("2027-10-31T02:30").astimezone(UTC) == dt.timedelta(hours=1)


def test_without_a_start_the_clock_is_the_machines():
    machine = RealClock("2026-11-26T09:00:00")
    assert SystemClock(ROME, utc_now=machine).now() == at("2026-11-26T10:00")


def test_a_fixed_moment_wins_over_the_start():
    clock = SystemClock(ROME, fixed=at("2026-11-26T19:00"), start=at("2026-11-26T10:00"))
    assert clock.now() == at("2026-11-26T19:00")


def test_the_setting_is_a_local_time():
    settings = load_settings(environment(WAREHOUSE_CLOCK_START="2026-11-26T10:00"))
    assert settings.clock_start == dt.datetime(2026, 11, 26, 10, 0)
    assert load_settings(environment()).clock_start is None
    with pytest.raises(ConfigurationError, match="WAREHOUSE_CLOCK_START"):
        load_settings(environment(WAREHOUSE_CLOCK_START="tomorrow"))


def test_the_composition_root_starts_the_clock_there():
    settings = load_settings(environment(WAREHOUSE_CLOCK_START="2026-11-28T23:59"))
    core = bootstrap(settings, store=FakeStore(), migrate=False)
    assert core.clock.now().date() == dt.date(2026, 11, 28)
    assert core.session_status().day == dt.date(2026, 11, 28)
