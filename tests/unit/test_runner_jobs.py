from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading

import pytest

from tests.conftest import VALID_SAMPLE, at
from warehouse_core.model import MailEvent, SessionPhase, SessionState
from warehouse_runner.jobs import PollTicks, guarded, mail_tick, run_scheduler, run_session_worker, upkeep_tick


def inline(job):
    """PollTicks' spawn, for tests that want each poll over when the tick returns."""
    job()


def test_polls_happen_on_the_half_hour_inside_the_window_on_poll_days_once_each(world):
    polls = PollTicks(world.core, spawn=inline)
    minutes = [at("2026-11-26T07:00") + dt.timedelta(minutes=m, seconds=s) for m in range(14 * 60) for s in (0, 30)]
    polled = [now.strftime("%H:%M:%S") for now in minutes if polls(now)]
    assert polled == ["{:02}:{:02}:00".format(8 + m // 60, m % 60) for m in range(0, 12 * 60 + 1, 30)]
    assert not polls(at("2026-11-29T10:00"))  # Sunday


def test_a_poll_the_scheduler_could_not_run_at_its_minute_runs_late_once_never_skipped(world, caplog):
    """issue 20: a poll had to run inside its exact minute; a long round before it skipped it."""
    polls = PollTicks(world.core, spawn=inline)
    assert polls(at("2026-11-26T10:00"))
    assert polls(at("2026-11-26T10:47:10")), "the 10:30 poll, 17 minutes late"
    assert "the poll of 10:30 runs late, at 10:47:10" in caplog.text
    assert not polls(at("2026-11-26T10:59:59"))
    assert polls(at("2026-11-26T11:00"))
    assert polls(at("2026-11-26T20:12")), "the window's last poll, late: still run"
    assert not polls(at("2026-11-26T21:00"))
    with world.store.unit_of_work() as uow:
        assert uow.metrics_snapshot(at("2026-11-26T21:00").date()).poll_last_success_at == at("2026-11-26T20:12")


def test_a_slow_mail_round_neither_skips_the_poll_nor_pushes_the_alert_to_the_next_poll(world):
    """issue 20: mail ran on the scheduler's thread, and a poll had to run in its exact minute: a
    long mail round skipped the 19:00 poll, and the 19:00 no-file alert went out at 19:30. The
    scheduler runs on an injected clock and an injected wait (no sleeps); the mail round is held
    in SMTP until the test lets it go."""
    in_smtp, release, rounds = threading.Event(), threading.Event(), []

    def slow_round(now):
        rounds.append(now)
        in_smtp.set()
        assert release.wait(10), "the test lets the mail round go"
        return world.core.deliver_outbox(now)

    core = dataclasses.replace(world.core, deliver_outbox=slow_round)
    stop = threading.Event()
    script = iter(["2026-11-26T18:59:00", "2026-11-26T19:00:00", "2026-11-26T19:00:30", "2026-11-26T19:01:00"])

    def wait(seconds):
        """The scheduler's idle second: the clock moves on to the next scripted moment; at the
        script's end, what the scheduler did while the mail round was in SMTP, then the stop."""
        assert in_smtp.wait(10), "the mail round started at the scheduler's start"
        moment = next(script, None)
        if moment is not None:
            world.clock.set(at(moment))
            return False
        while_in_smtp.update(
            alerts=[e.queued_at for e in world.store.data.outbox if e.mail.event is MailEvent.NO_FILE],
            sent=world.mailer.events(),
            rounds=len(rounds),
        )
        stop.set()
        release.set()
        return True

    while_in_smtp = {}
    world.clock.set(at("2026-11-26T18:58:30"))
    scheduler = threading.Thread(target=run_scheduler, args=(core, stop), kwargs={"wait": wait, "spawn": inline})
    scheduler.start()
    scheduler.join(10)
    assert not scheduler.is_alive()
    assert while_in_smtp == {"alerts": [at("2026-11-26T19:00")], "sent": [], "rounds": 1}
    assert world.mailer.events() == ["no-file"], "the round, let go, delivered the alert; the stop waited for it"


def test_a_poll_hanging_past_the_alert_time_neither_postpones_the_alert_nor_skips_its_own_poll(world):
    """The 18:30 poll's server stops answering until 19:07: at 19:00 the alert is checked all the
    same (the hanging poll holds the poll lock; the alert does not wait for it), and the 19:00 poll
    runs late, once the 18:30 one has ended. The poll runs in a thread of its own; the test lets
    the server answer when it wants, with no sleeps."""
    from contextlib import contextmanager

    in_listing, answer = threading.Event(), threading.Event()
    connect = world.inbound.connect

    @contextmanager
    def hanging_server():
        in_listing.set()
        assert answer.wait(10), "the test lets the server answer"
        with connect() as connection:
            yield connection

    world.inbound.connect = hanging_server
    threads = []

    def spawn(job):
        threads.append(threading.Thread(target=job))
        threads[-1].start()

    polls = PollTicks(world.core, spawn=spawn)
    world.clock.set(at("2026-11-26T18:30"))  # the store tells how long the lock is held on this clock
    assert polls(at("2026-11-26T18:30"))
    assert in_listing.wait(10)
    world.clock.set(at("2026-11-26T19:00"))
    assert not polls(at("2026-11-26T19:00")), "the 18:30 poll still runs: the 19:00 one waits"
    alerts = [e.queued_at for e in world.store.data.outbox if e.mail.event is MailEvent.NO_FILE]
    assert alerts == [at("2026-11-26T19:00")], "checked at its time, while the 18:30 poll hangs"
    answer.set()
    threads[0].join(10)
    world.clock.set(at("2026-11-26T19:07"))
    assert polls(at("2026-11-26T19:07")), "the 19:00 poll, late"
    threads[1].join(10)
    with world.store.unit_of_work() as uow:
        assert uow.metrics_snapshot(at("2026-11-26T19:07").date()).poll_last_success_at == at("2026-11-26T19:07")


def test_an_alert_deferred_to_another_processs_poll_is_checked_at_the_next_ticks_not_the_next_poll(world):
    """Another process's poll takes the lock at 19:00 and hangs. The 19:00 poll here skips for the
    lock and defers the alert check to that poll; the scheduler asks again at each tick, and the
    alert goes out at 19:05 (that poll holds the lock too long), not at the 19:30 poll."""
    polls = PollTicks(world.core, spawn=inline)
    world.clock.set(at("2026-11-26T19:00"))
    with world.store.exclusive_poll():
        assert polls(at("2026-11-26T19:00"))
        assert polls.alert_deferred and world.store.mails("no-file") == []
        world.clock.set(at("2026-11-26T19:04:30"))
        assert not polls(world.clock.now())
        assert polls.alert_deferred and world.store.mails("no-file") == []
        world.clock.set(at("2026-11-26T19:05:00"))
        assert not polls(world.clock.now())
    assert not polls.alert_deferred
    alerts = [e.queued_at for e in world.store.data.outbox if e.mail.event is MailEvent.NO_FILE]
    assert alerts == [at("2026-11-26T19:05")]


def test_an_alert_deferred_to_another_processs_poll_that_imports_the_file_is_never_sent(world):
    polls = PollTicks(world.core, spawn=inline)
    world.clock.set(at("2026-11-26T19:00"))
    with world.store.exclusive_poll():
        polls(at("2026-11-26T19:00"))
        assert polls.alert_deferred
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.core.ingest_daily_file(at("2026-11-26T19:01"))  # the other process's poll, ending
    world.clock.set(at("2026-11-26T19:01:01"))
    polls(world.clock.now())
    assert not polls.alert_deferred and world.store.mails("no-file") == []


def test_a_failing_job_is_logged_and_the_daemon_goes_on(world, caplog):
    def broken(core, now):
        raise RuntimeError("database went away")

    guarded("poll", broken, world.core)()
    assert "poll failed" in caplog.text and "database went away" in caplog.text


def test_scheduler_polls_at_start_inside_the_window_and_stops_on_request(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.clock.set(at("2026-11-26T10:12"))
    stop = threading.Event()

    def wait(seconds):
        stop.set()
        return True

    thread = threading.Thread(target=run_scheduler, args=(world.core, stop), kwargs={"wait": wait})
    thread.start()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert world.inbound.deleted == [VALID_SAMPLE.name], "the 10:00 poll, owed at start"
    world.deliver()
    assert world.mailer.events() == ["import-summary"]


def test_dependency_checks_run_at_most_every_five_minutes_and_retention_once_a_day(make_world):
    from warehouse_runner.jobs import upkeep_tick

    tries = []

    def smtp_probe():
        tries.append("smtp")
        raise OSError("connection refused")

    world = make_world(archive_keep_days=30, probes={"database": lambda: tries.append("database"), "smtp": smtp_probe})
    for minute in ("10:00", "10:01", "10:04", "10:05", "10:06"):
        upkeep_tick(world.core, at("2026-11-26T" + minute))
    assert tries == ["database", "smtp", "database", "smtp"]
    with world.store.unit_of_work() as uow:
        snapshot = uow.metrics_snapshot(at("2026-11-26T10:06").date())
        cleaned = uow.last_check("cleanup")
    assert snapshot.dependencies == {"database": True, "smtp": False}
    assert cleaned == at("2026-11-26T10:00"), "the retention ran once today"
    upkeep_tick(world.core, at("2026-11-27T00:01"))
    with world.store.unit_of_work() as uow:
        assert uow.last_check("cleanup") == at("2026-11-27T00:01")


def test_the_upkeep_runs_beside_the_poll_one_round_at_a_time():
    from warehouse_runner.jobs import in_background

    started, release, rounds = threading.Event(), threading.Event(), []

    def slow_check():
        rounds.append(threading.current_thread().name)
        started.set()
        release.wait(5)

    def join_rounds():
        for thread in [t for t in threading.enumerate() if t.name == "upkeep"]:
            thread.join(5)

    start = in_background("upkeep", slow_check)
    start()  # returns at once: the round waits for its dependency in its own thread
    assert started.wait(5)
    start()  # skipped: the first round still runs
    assert not release.is_set() and rounds == ["upkeep"]
    release.set()
    join_rounds()
    start()
    join_rounds()
    assert rounds == ["upkeep", "upkeep"]


def test_while_the_database_is_down_each_tick_logs_one_error_line_naming_it_without_a_traceback(world, caplog):
    """A database that is down for an hour is expected, not a bug: one ERROR line per tick that
    says what is wrong, not a traceback a minute (SPEC §10)."""
    world.store.available = False

    def poll_tick(core, now):
        PollTicks(core, spawn=inline)(now)

    for name, job in (("poll", poll_tick), ("mail delivery", mail_tick), ("upkeep", upkeep_tick)):
        caplog.clear()
        guarded(name, job, world.core)()
        [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert record.levelno == logging.ERROR and record.exc_info is None, name
        assert name in record.getMessage() and "the fake database is switched off" in record.getMessage()


def test_while_the_database_is_down_a_session_worker_round_logs_one_line_without_a_traceback(world, caplog):
    world.store.available = False
    stop = threading.Event()
    worker = threading.Thread(target=run_session_worker, args=(world.core, stop, 60.0))
    worker.start()
    try:
        for _ in range(500):  # until the first round has failed, then the worker waits its 60 s
            if any(r.levelno >= logging.WARNING for r in caplog.records):
                break
            stop.wait(0.01)
    finally:
        stop.set()
        world.core.session_wakeup.set()
        worker.join(5)
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.ERROR and record.exc_info is None
    assert "the fake database is switched off" in record.getMessage()


EARLIER, TODAY = dt.date(2026, 11, 26), dt.date(2026, 11, 27)


def session(world, day):
    with world.store.unit_of_work() as uow:
        return uow.session(day)


def an_earlier_day_retried_and_started_beside_today(world, start_today=True):
    """The 26th failed at its upload (every STOR refused); on the 27th ops retry it and the
    operator starts it from the page's earlier list, then starts the 27th (unless not
    ``start_today``). The consumer confirms the 27th's file at once and never writes its line for
    the 26th's."""
    world.inbound.files["Letture20261126083015123_9.txt"] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.core.start_session(world.clock.now())
    world.outbound.fail_next = 3
    world.work()
    assert session(world, EARLIER).state is SessionState.FAILED
    for number in ("600000010", "600000011"):
        world.store.invoice_view[number] = dict(world.store.invoice_view["600000001"], invoice_number=number)
    world.inbound.files["Letture20261127080000000_1.txt"] = b"600000010|1|Pane|1.00\n600000011|2|Pane|2.00\n"
    world.poll("2026-11-27T09:00")
    world.core.retry_session(EARLIER, "the outbound server was down", "cli:ops", world.clock.now(), False)
    world.core.start_session(world.clock.now(), day=EARLIER)
    if start_today:
        world.core.start_session(world.clock.now())

    def only_todays_file_is_confirmed(name, data):
        if "20261127" in name:
            world.remote_log.append("importer-20261127.log", "{}: {} records read".format(name, data.count(b"\n")))

    world.outbound.on_upload = only_todays_file_is_confirmed


def test_a_retried_earlier_day_waiting_for_its_confirmation_does_not_hold_up_todays_session(world):
    """SPEC §5: one day's trouble never holds up another day's session. The worker claimed and
    worked the running days one after the other: while the 26th's watch waited for the consumer's
    line (up to WAREHOUSE_REMOTE_LOG_TIMEOUT, 900 s by default), the 27th was not even exported.
    Each day now has a thread of its own. The fake clock stands still, so the 26th's watch never
    times out: it watches until the stop. Once it watches (its first wait between two looks at the
    log), the operator starts the 27th; that wait is held until today's session has completed
    (today's file is confirmed at its first look, so only the 26th waits). The 30 s only make a
    regression fail instead of hanging."""
    an_earlier_day_retried_and_started_beside_today(world, start_today=False)
    earlier_watching, today_completed, stop = threading.Event(), threading.Event(), threading.Event()
    deliver = world.core.deliver_outbox

    def deliver_and_note(now):
        if session(world, TODAY).state is SessionState.COMPLETED:
            today_completed.set()
        return deliver(now)

    def wait(seconds):
        earlier_watching.set()
        today_completed.wait(30)
        return stop.wait(seconds)

    core = dataclasses.replace(world.core, deliver_outbox=deliver_and_note)
    worker = threading.Thread(target=run_session_worker, args=(core, stop), kwargs={"wait": wait})
    worker.start()
    try:
        assert earlier_watching.wait(30), "the 26th never reached its watch"
        assert session(world, EARLIER).phase is SessionPhase.WATCHING
        world.core.start_session(world.clock.now())  # wakes the worker
        assert today_completed.wait(30), "today's session waited for the 26th's watch"
        earlier = session(world, EARLIER)
        assert (earlier.state, earlier.phase) == (SessionState.RUNNING, SessionPhase.WATCHING)
    finally:
        stop.set()
        core.session_wakeup.set()
        worker.join(30)
    assert not worker.is_alive()
    assert session(world, TODAY).state is SessionState.COMPLETED


def test_the_session_worker_stops_once_the_days_threads_have_seen_the_stop(world, caplog):
    """Each running day works in a thread of its own; a stop reaches them through their wait
    (``stop.wait``), and the worker joins them before it says it stopped."""
    caplog.set_level(logging.INFO)
    an_earlier_day_retried_and_started_beside_today(world)
    world.outbound.on_upload = None  # neither file is confirmed: both days watch until the stop
    watching, stop = threading.Semaphore(0), threading.Event()

    def wait(seconds):
        watching.release()
        return stop.wait(seconds)

    worker = threading.Thread(target=run_session_worker, args=(world.core, stop), kwargs={"wait": wait})
    worker.start()
    try:
        assert watching.acquire(timeout=30) and watching.acquire(timeout=30), "both days watch"
        days = sorted(t.name for t in threading.enumerate() if t.name.startswith("warehouse-session-2"))
        assert days == ["warehouse-session-2026-11-26", "warehouse-session-2026-11-27"]
    finally:
        stop.set()
        world.core.session_wakeup.set()
        worker.join(30)
    assert not worker.is_alive()
    assert not [t for t in threading.enumerate() if t.name.startswith("warehouse-session-2")]
    said = [r.getMessage() for r in caplog.records]
    assert said.index("session worker stopped") > max(
        i for i, line in enumerate(said) if "worker shutting down while watching the remote log" in line
    )
    assert {session(world, day).state for day in (EARLIER, TODAY)} == {SessionState.RUNNING}


def test_two_session_workers_never_work_one_day_at_once(world):
    """warehouse-web (with its scheduler) and warehouse-runner each run a session worker, each
    with a thread per day: the day's claim, held by one worker at a time, keeps them apart. The
    first worker's thread watches the 26th; the second worker's round finds it claimed and leaves
    it."""
    from contextlib import contextmanager

    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.core.start_session(world.clock.now())
    claims, watching, refused, stop = [], threading.Event(), threading.Event(), threading.Event()
    claim = world.store.claim_session

    @contextmanager
    def noted_claim(day):
        with claim(day) as claimed:
            claims.append(claimed)
            if not claimed:
                refused.set()
            yield claimed

    def wait(seconds):
        watching.set()
        return stop.wait(seconds)

    world.store.claim_session = noted_claim
    workers = [threading.Thread(target=run_session_worker, args=(world.core, stop), kwargs={"wait": wait})]
    workers[0].start()
    try:
        assert watching.wait(30), "the first worker watches the 26th"
        workers.append(threading.Thread(target=run_session_worker, args=(world.core, stop), kwargs={"wait": wait}))
        workers[1].start()
        assert refused.wait(30), "the second worker tried the 26th"
    finally:
        stop.set()
        world.core.session_wakeup.set()
        for worker in workers:
            worker.join(30)
    assert claims[0] is True and not any(claims[1:])
    assert world.outbound.attempts == 1


def test_an_unexpected_error_in_a_job_keeps_its_traceback(world, caplog):
    def broken(core, now):
        raise KeyError("a bug")

    guarded("poll", broken, world.core)()
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_a_failed_clean_up_is_not_the_days_run_it_is_tried_again_an_hour_later(make_world):
    """A clean-up that failed (a file it may not delete, the database gone mid-way) was recorded
    as the day's run: nothing was tried again before the next day."""
    from warehouse_runner.jobs import upkeep_tick

    world = make_world(archive_keep_days=30, probes={})
    old = "Letture20261015083015123_9.txt"
    world.inbound.files[old] = VALID_SAMPLE.read_bytes()
    world.poll("2026-10-15T10:00")
    world.core.close_session(world.clock.now())  # a final day: its file may go
    assert list(world.archive.files) == ["2026-10-15/" + old]
    world.archive.fail_delete = PermissionError("Permission denied")
    with pytest.raises(PermissionError):
        upkeep_tick(world.core, at("2026-11-26T00:01"))
    world.archive.fail_delete = None
    upkeep_tick(world.core, at("2026-11-26T00:30"))  # not at every tick: the upkeep runs each minute
    assert list(world.archive.files) == ["2026-10-15/" + old]
    upkeep_tick(world.core, at("2026-11-26T01:01"))
    assert list(world.archive.files) == []
    with world.store.unit_of_work() as uow:
        assert uow.last_success("cleanup") == at("2026-11-26T01:01")
    upkeep_tick(world.core, at("2026-11-26T23:59"))  # done for the day
    with world.store.unit_of_work() as uow:
        assert uow.last_check("cleanup") == at("2026-11-26T01:01")


# --- review 2a, findings 3 and 8: the deferred no-file alert check ------------------------------


def test_a_no_file_alert_deferred_to_another_processs_poll_is_sent_when_the_window_shuts_at_the_alert_time(
    make_world,
):
    """Never sent: WAREHOUSE_POLL_WINDOW=08:00-19:00, the alert at 19:00 (the window's last poll).
    The web process's 18:30 poll ran late, from 18:58 (a slow mail round), and holds the poll lock
    until 19:01:30 (a slow server); no file came. At 19:00 the runner's poll skips for the lock and
    defers the alert check to that poll (held 2 min < 5). But that poll checks the alert with its
    own time, 18:58, not yet due; and the runner's deferred check at 19:01:31 finds the alert not
    due either: alert_due() needs the window open, and it shut at 19:00. No alert for the day
    (SPEC §4: the no-file alert is never postponed by a poll, let alone dropped)."""
    world = make_world(poll_window="08:00-19:00")
    polls = PollTicks(world.core, spawn=inline)
    world.clock.set(at("2026-11-26T18:58"))
    with world.store.exclusive_poll():  # the web process's late 18:30 poll, from 18:58
        world.clock.set(at("2026-11-26T19:00"))
        assert polls(world.clock.now())
        assert polls.alert_deferred and world.store.mails("no-file") == []
    # That poll ends; its own alert check ran with its own time: not due at 18:58.
    world.core.ingest_daily_file(at("2026-11-26T18:58"), any_time=True)
    world.clock.set(at("2026-11-26T19:01:31"))
    polls(world.clock.now())
    assert not polls.alert_deferred
    assert len(world.store.mails("no-file")) == 1  # fails now: no alert at all for the 26th


def test_a_deferred_alert_check_that_keeps_failing_never_stops_the_polls(world, monkeypatch):
    """Stuck for the rest of the day: the 19:00 alert check is deferred to another process's poll.
    From then on PollTicks asks check_alert() at every tick *before* it looks for a due poll, so
    when that check raises (a bug, a customer's no-file template that breaks on this day's values,
    anything but an outage that ends) the guarded tick logs it and returns: the 19:30 poll, and
    every later one, never starts in this process. Today's file, arriving at 19:20, is not imported
    (before the change a broken alert ended only the poll's own alert check, in the poll thread)."""
    polls = PollTicks(world.core, spawn=inline)
    tick = guarded("poll", lambda core, now: polls(now), world.core)
    world.clock.set(at("2026-11-26T18:59"))
    with world.store.exclusive_poll():  # another process's poll, from 18:59
        world.clock.set(at("2026-11-26T19:00"))
        tick()
        assert polls.alert_deferred

    def broken(*args, **kwargs):
        raise RuntimeError("'dict object' has no attribute 'name' (no-file.txt, line 7)")

    monkeypatch.setattr(world.core.ingest_daily_file, "_alert_if_no_file", broken)
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()  # today's file, late
    world.clock.set(at("2026-11-26T19:30"))
    tick()
    assert world.inbound.deleted == [VALID_SAMPLE.name], "the 19:30 poll never ran"  # fails now


def test_the_alert_time_poll_run_late_after_the_window_shut_still_sends_the_no_file_alert(make_world):
    """Review 3a, finding 3. WAREHOUSE_POLL_WINDOW=08:00-19:00, the alert at 19:00 (the
    window's last poll), no file today. The runner is restarted at 19:00:40 (a deploy) and its first
    tick comes at 19:01:05: the 19:00 poll is owed and runs late (SPEC §4: late, never silently
    skipped, and the no-file alert never postponed by it; any_time: 'the window was open at the
    poll's own time'). But the poll checks the alert with its own late time, and alert_due() needs
    the window open: shut at 19:00. c7f4baa made only the deferred re-check 'due as it was at the
    alert time'; the late alert-time poll itself still drops the alert: nobody is told no file came."""
    world = make_world(poll_window="08:00-19:00")
    polls = PollTicks(world.core, spawn=inline)  # the restarted process's scheduler
    world.clock.set(at("2026-11-26T19:01:05"))
    assert polls(world.clock.now()), "the 19:00 poll, late"
    assert len(world.store.mails("no-file")) == 1
