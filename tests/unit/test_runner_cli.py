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


# --- session close --day (SPEC §9, §5 "Earlier days are never out of reach") -----------------------


def failed_day(world):
    """2026-11-26 failed (the consumer's log reports an error); the clock is on the 27th."""
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.outbound.on_upload = lambda name, data: world.remote_log.append(
        "importer-20261126.log", "{}: ERROR line 2".format(name)
    )
    world.core.start_session(world.clock.now())
    world.work()
    world.clock.set(at("2026-11-27T09:00"))
    return at("2026-11-26T00:00").date()


def through_main(world, monkeypatch, *argv):
    """The command as ops run it: main() with its refusals turned into one line and an exit status."""
    from warehouse_runner import cli

    monkeypatch.setattr(cli, "start", lambda arguments: world.core)
    return cli.main(list(argv))


def test_session_close_closes_an_earlier_day_audited_with_the_os_user_and_the_reason(world, capsys):
    from warehouse_core.model import SessionState
    from warehouse_runner.cli import command_actor

    day = failed_day(world)
    status = run(world, "session", "close", "--day", "2026-11-26", "--reason", "the consumer re-imported it by hand")
    assert status == 0
    assert world.core.session_status(day).state is SessionState.CLOSED
    assert capsys.readouterr().out.startswith("session for 2026-11-26 is closed")
    [event] = [e for e in world.store.data.events if e.day == day and e.kind.value == "session-closed"]
    assert event.actor == command_actor() and event.actor.startswith("cli:")
    assert event.detail == {"from": "failed", "reason": "the consumer re-imported it by hand"}
    assert world.core.status().earlier == []


def test_session_close_of_a_final_day_is_refused_with_one_line_and_exit_1(world, monkeypatch, capsys):
    failed_day(world)
    assert through_main(world, monkeypatch, "session", "close", "--day", "2026-11-26", "--reason", "x") == 0
    capsys.readouterr()
    status = through_main(world, monkeypatch, "session", "close", "--day", "2026-11-26", "--reason", "again")
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    # An earlier day's refusal does not speak of today (review 2b).
    assert err[-1] == "warehouse-runner: The session for 2026-11-26 is closed: nothing more happens for that day."


def test_session_close_needs_a_reason_that_says_something(world, monkeypatch, capsys):
    from warehouse_core.model import SessionState

    day = failed_day(world)
    assert through_main(world, monkeypatch, "session", "close", "--day", "2026-11-26", "--reason", "  ") == 1
    assert "needs a reason" in capsys.readouterr().err.strip().splitlines()[-1]
    assert world.core.session_status(day).state is SessionState.FAILED


def test_session_close_of_a_closed_day_whose_delivery_is_unknown_asks_the_server_now(world, capsys):
    """Closed while its file was being renamed, and the server did not answer then: the command
    settles it now, as Close does (the fence sets the temporary file aside: nothing delivered)."""
    from warehouse_core.delivery_states import Delivery
    from warehouse_core.model import SessionPhase

    day = at("2026-11-26T00:00").date()
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.core.start_session(world.clock.now())
    with world.store.unit_of_work() as uow:  # the worker asked for the rename, then went away
        assert uow.update_session(day, phase=SessionPhase.RENAMING, export_file="Spedizioni20261126_6.txt")
        assert uow.set_delivery(day, Delivery.UNKNOWN)
    world.outbound.unreachable = True  # so the Close cannot settle it: it stays settling
    world.core.close_session(world.clock.now())
    assert world.core.session_status(day).phase is SessionPhase.SETTLING
    world.outbound.unreachable = False
    world.outbound.files[world.outbound.temporary("Spedizioni20261126_6.txt")] = b"x"
    world.clock.set(at("2026-11-27T09:00"))
    assert [s.day for s in world.core.status().earlier] == [day]
    assert run(world, "session", "close", "--day", "2026-11-26", "--reason", "ops checked the server") == 0
    after = world.core.session_status(day)
    assert after.phase is not SessionPhase.SETTLING
    [event] = [e for e in world.store.data.events if e.day == day and e.detail.get("reason")]
    assert event.detail["reason"] == "ops checked the server" and event.actor.startswith("cli:")
