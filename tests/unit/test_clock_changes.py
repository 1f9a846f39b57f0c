"""Deadlines and intervals across daylight-saving changes (SPEC §5): measured on the monotonic
clock, so that the October night neither stalls them for an hour nor the March night shortens them."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from tests.conftest import VALID_SAMPLE, at
from warehouse_core.model import SessionState


def ready_on(world, moment):
    world.clock.set(moment)
    world.core.import_upload("upload.txt", io.BytesIO(VALID_SAMPLE.read_bytes()), world.clock.now())
    assert world.core.session_status().state is SessionState.READY
    return moment


def utc(moment):
    return moment.astimezone(dt.timezone.utc)


@pytest.mark.parametrize(
    "start",
    [
        at("2027-10-31T02:50"),  # summer time; 15 minutes later the clocks go back from 03:00 to 02:00
        at("2027-03-28T01:50"),  # winter time; 10 minutes later the clocks jump from 02:00 to 03:00
    ],
    ids=["fall-back", "spring-forward"],
)
def test_the_remote_log_timeout_is_900_seconds_of_elapsed_time(world, start):
    ready_on(world, start)
    world.core.start_session(world.clock.now())
    world.work()
    status = world.core.session_status()
    assert status.state is SessionState.FAILED and "within 900 s" in status.detail
    waited = (utc(world.clock.now()) - utc(start)).total_seconds()
    assert 900 <= waited <= 900 + 15  # one read interval of slack, never an hour more or 10 minutes less


def test_progress_and_the_close_request_are_checked_across_the_fall_back(world):
    """Every line takes a second; the operator closes after the third, as the clocks go back."""
    ready_on(world, at("2027-10-31T02:59:59"))
    world.core.start_session(world.clock.now())

    def a_second_per_line(index):
        world.clock.advance(1)
        if index == 3:
            world.core.close_session(world.clock.now())

    world.store.on_export_line = a_second_per_line
    world.work()
    assert world.core.session_status().state is SessionState.CLOSED
    [(key, written)] = world.exports.files.items()
    assert bytes(written).count(b"\n") < 6, "the export went on to the end: the progress check stalled"
    assert world.outbound.files == {}
