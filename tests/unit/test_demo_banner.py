"""The `make run` banner says what today's state is, and why it is `none` when it is."""

from __future__ import annotations

from tests.conftest import VALID_SAMPLE
from warehouse_devstack.stack import today_lines


def test_while_the_start_up_poll_takes_todays_file_the_banner_says_so(world):
    [line] = today_lines(world.core, no_sample=False, waiting=VALID_SAMPLE.name)
    assert line.startswith(" Today           2026-11-26: none yet")
    assert "the start-up poll is taking {}".format(VALID_SAMPLE.name) in line
    assert "the page shows" in line


def test_without_a_file_for_today_the_banner_says_none_and_why(world):
    [line] = today_lines(world.core, no_sample=True, waiting=None)
    assert line.startswith(" Today           2026-11-26: none")
    assert "no file for today on the inbound FTP server" in line


def test_once_the_poll_has_imported_the_banner_says_ready(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    assert today_lines(world.core, no_sample=False, waiting=None) == [" Today           2026-11-26: ready"]
