"""``warehouse-runner`` commands on the fakes, with the time the test sets (SPEC §9)."""

from __future__ import annotations

from tests.conftest import VALID_SAMPLE, at
from warehouse_runner.cli import parser, run_command

SATURDAY_FILE = "Letture20261128213000000_9.txt"


def run(world, *argv):
    return run_command(world.core, parser().parse_args(list(argv)))


def test_poll_without_at_polls_now_whatever_the_window_and_days(world, capsys):
    world.clock.set(at("2026-11-28T22:00"))  # a Saturday, after the window
    world.inbound.files[SATURDAY_FILE] = VALID_SAMPLE.read_bytes()
    assert run(world, "poll") == 0
    assert "imported: " + SATURDAY_FILE in capsys.readouterr().out
    assert world.inbound.deleted == [SATURDAY_FILE]
    assert world.store.mails("no-file") == []


def test_poll_without_at_applies_the_alert_rule_to_the_current_time(world, capsys):
    world.clock.set(at("2026-11-26T19:10"))  # a Thursday, after the alert time
    assert run(world, "poll") == 0
    assert len(world.store.mails("no-file")) == 1
    world.clock.set(at("2026-11-28T19:10"))  # a Saturday: no file is expected
    assert run(world, "poll") == 0
    assert [m.day.isoformat() for m in world.store.mails("no-file")] == ["2026-11-26"]


def test_poll_with_at_applies_every_rule(world, capsys):
    world.clock.set(at("2026-11-28T22:00"))  # main() fixes the clock at --at
    world.inbound.files[SATURDAY_FILE] = VALID_SAMPLE.read_bytes()
    assert run(world, "poll", "--at", "2026-11-28T22:00") == 0
    assert "skipped" in capsys.readouterr().out
    assert list(world.inbound.files) == [SATURDAY_FILE] and world.inbound.downloads == []


def test_poll_that_cannot_read_the_inbound_server_exits_1_with_one_line(world, capsys):
    world.inbound.failing.add("LOGIN")
    status = run(world, "poll")
    out, err = capsys.readouterr()
    assert status == 1
    assert "nothing to do" not in out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("warehouse-runner: ") and "inbound" in last and "LOGIN failed" in last


def test_poll_that_lost_the_server_midway_exits_1(world, capsys):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.inbound.failing.add("RETR")
    assert run(world, "poll") == 1
    assert "RETR failed" in capsys.readouterr().err.strip().splitlines()[-1]
