"""The scheduled jobs: plain functions of (core, now) that tests call directly."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from warehouse_core.audit import SYSTEM
from warehouse_core.bootstrap import Core
from warehouse_core.errors import DatabaseUnavailable
from warehouse_core.usecases.checks import cleanup_due, record_cleanup

log = logging.getLogger(__name__)


class PollTicks:
    """Which poll the scheduler owes, run at most once each: the one of ``now``'s minute, or the
    last one it could not run at its minute (a slow server, a long round), late, never skipped
    (SPEC §4). Each poll runs through ``spawn`` (a thread of its own, one poll at a time), so the
    scheduler goes on ticking while a poll waits for a server. The alert time is a poll of its own,
    and while a poll still runs at a tick where the alert is due, the alert is checked at once
    without it: a poll never postpones the no-file alert. ``after_poll`` runs after each poll
    (the mail thread's wake-up)."""

    def __init__(
        self,
        core: Core,
        after_poll: Callable[[], None] = lambda: None,
        spawn: Optional[Callable[[Callable[[], None]], None]] = None,
    ) -> None:
        self.core = core
        self.after_poll = after_poll
        self.spawn = spawn or _in_thread("warehouse-poll")
        self.idle = threading.Lock()  # held while a poll runs
        self.done: Optional[dt.datetime] = None
        self.alert_checked: Optional[dt.datetime] = None
        # The alert check waited for a poll another process had just started: asked again at
        # each tick until it is not deferred (that poll ends, or holds the lock too long), as due
        # as it was when it was deferred.
        self.alert_deferred = False
        self.deferred_at: Optional[dt.datetime] = None

    def __call__(self, now: dt.datetime) -> bool:
        """Start the poll ``now`` owes, if any; whether one started."""
        if self.alert_deferred:
            self._deferred_alert(now)
        due = self.core.schedule.due_poll(now)
        if due is None or due == self.done:
            return False
        if not self.idle.acquire(blocking=False):
            # The previous poll still runs: this one runs when it ends, but the alert does not wait.
            if self.core.schedule.alert_due(now) and self.alert_checked != due:
                self.alert_checked = due
                log.warning("a poll still runs at %s: the no-file alert is checked without it", now.strftime("%H:%M"))
                # The running poll holds the poll lock, so this one only checks the alert.
                self._defer(self.core.ingest_daily_file(now, any_time=True).alert_deferred, now)
            return False
        late = self.done is not None and now - due >= dt.timedelta(minutes=1)
        self.done = due
        if late:
            log.warning("the poll of %s runs late, at %s", due.strftime("%H:%M"), now.strftime("%H:%M:%S"))
        try:
            self.spawn(lambda: self._poll(now, due))
        except BaseException:  # no thread to run it (the process is out of threads): not running
            self.idle.release()
            raise
        return True

    def _defer(self, deferred: bool, at: dt.datetime) -> None:
        if deferred and not self.alert_deferred:
            self.deferred_at = at
        self.alert_deferred = deferred

    def _deferred_alert(self, now: dt.datetime) -> None:
        """Ask the deferred check again. An outage leaves it deferred, asked at the next tick; any
        other error ends it, logged: it never stops the polls that follow."""
        assert self.deferred_at is not None
        try:
            self.alert_deferred = self.core.ingest_daily_file.check_alert(now, self.deferred_at).alert_deferred
        except DatabaseUnavailable as error:
            log.error("the no-file alert check failed: %s; asked again at the next tick", error)
        except Exception:
            log.exception("the no-file alert check failed; the polls go on")
            self.alert_deferred = False

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no poll runs (a stop lets the current poll end); whether none runs."""
        if not self.idle.acquire(timeout=timeout):
            return False
        self.idle.release()
        return True

    def _poll(self, now: dt.datetime, due: dt.datetime) -> None:
        try:
            # The window was open at the poll's own time: a late one runs even if it has shut
            # since, and its no-file alert is due as it was at that time.
            if self.core.ingest_daily_file(now, any_time=True, due_at=due).alert_deferred:
                self._defer(True, due)
        except DatabaseUnavailable as error:
            log.error("poll failed: %s; it runs again at its next tick", error)
        except Exception:
            log.exception("poll failed; it runs again at its next tick")
        finally:
            self.idle.release()
            self.after_poll()


def _in_thread(name: str) -> Callable[[Callable[[], None]], None]:
    def spawn(job: Callable[[], None]) -> None:
        threading.Thread(target=job, name=name, daemon=True).start()

    return spawn


def mail_tick(core: Core, now: dt.datetime) -> None:
    core.deliver_outbox(now)


def upkeep_tick(core: Core, now: dt.datetime) -> None:
    """The dependency checks (at most every 5 minutes) and the daily retention, whichever is due."""
    core.check_dependencies(now)
    if cleanup_due(core.store, now):
        try:
            report = core.clean_up(now, SYSTEM)
        except Exception as error:
            record_cleanup(core.store, now, False, str(error))
            raise
        record_cleanup(
            core.store,
            now,
            True,
            "{} archived files and {} exports deleted".format(report.archived_deleted, report.exports_deleted),
        )


def guarded(name: str, job: Callable[[Core, dt.datetime], object], core: Core) -> Callable[[], None]:
    """A job that logs its failure instead of ending the daemon; the next tick tries again."""

    def run() -> None:
        try:
            job(core, core.clock.now())
        except DatabaseUnavailable as error:
            # Expected while PostgreSQL is down or restarting: one line a tick, not a traceback.
            log.error("%s failed: %s; it runs again at its next tick", name, error)
        except Exception:
            log.exception("%s failed; it runs again at its next tick", name)

    return run


def in_background(name: str, job: Callable[[], None]) -> Callable[[], None]:
    """``job`` in a daemon thread of its own, one run at a time: a tick while it still runs is skipped."""
    running = threading.Lock()

    def run() -> None:
        try:
            job()
        finally:
            running.release()

    def start() -> None:
        if running.acquire(blocking=False):
            threading.Thread(target=run, name=name, daemon=True).start()

    return start


def run_mail_delivery(core: Core, stop: threading.Event, wakeup: threading.Event, every: float = 60.0) -> None:
    """Deliver the outbox every ``every`` seconds, and at once when woken (after a poll): in a
    thread of its own, so that a long SMTP round never delays a poll."""
    deliver = guarded("mail delivery", mail_tick, core)
    while not stop.is_set():
        deliver()
        wakeup.wait(timeout=every)
        wakeup.clear()
    log.info("mail delivery stopped")


def run_scheduler(
    core: Core,
    stop: threading.Event,
    wait: Optional[Callable[[float], bool]] = None,
    spawn: Optional[Callable[[Callable[[], None]], None]] = None,
) -> None:
    """Polls as they fall due (one at start when the window's latest poll is owed), each in a
    thread of its own, the dependency checks and retention each minute; mail delivery runs beside
    them in its own thread. ``wait(seconds)`` is the idle wait between two looks at the clock
    (``stop.wait``); ``spawn`` starts a poll (PollTicks). A stop lets the running poll end."""
    wait = wait or stop.wait
    mail_wakeup = threading.Event()
    mail = threading.Thread(
        target=run_mail_delivery, args=(core, stop, mail_wakeup), name="warehouse-mail", daemon=True
    )
    mail.start()
    polls = PollTicks(core, after_poll=mail_wakeup.set, spawn=spawn)
    poll = guarded("poll", lambda c, now: polls(now), core)
    # A check of a dependency that is down waits for its timeout: never in the thread that polls.
    upkeep = in_background("warehouse-upkeep", guarded("dependency checks and retention", upkeep_tick, core))
    upkept: Optional[Tuple[dt.date, int, int]] = None
    while not stop.is_set():
        poll()
        now = core.clock.now()
        minute = (now.date(), now.hour, now.minute)
        if minute != upkept and now.second >= 30:
            upkept = minute
            upkeep()
        wait(1.0)
    polls.wait_idle(timeout=60)
    mail_wakeup.set()
    mail.join(timeout=30)
    log.info("scheduler stopped")


# A stop lets each day's thread see it (at its next wait) for at most this long, together: below
# the 30 s warehouse-web gives the session worker, so that it still says it stopped.
SESSION_STOP_SECONDS = 20.0


def run_session_worker(
    core: Core, stop: threading.Event, idle_seconds: float = 2.0, wait: Optional[Callable[[float], bool]] = None
) -> None:
    """Work running sessions as they appear, each day in a thread of its own, so that one day's
    trouble (an earlier day retried, waiting for the consumer's line) never holds up another day's
    session (SPEC §5). Each round, woken at once by a start, else every few seconds, starts a
    thread for every running day that has none in this process; the claim keeps another process
    off the day. ``wait(seconds)`` is the days' wait (``stop.wait``): a stop reaches them there, and
    the worker waits a while for them to end."""
    wait = wait or stop.wait
    days: Dict[dt.date, threading.Thread] = {}
    while not stop.is_set():
        days = {day: thread for day, thread in days.items() if thread.is_alive()}
        try:
            for day in core.run_session.running_days():
                if day not in days:
                    days[day] = threading.Thread(
                        target=_work_day, args=(core, day, wait), name="warehouse-session-{}".format(day), daemon=True
                    )
                    days[day].start()
        except DatabaseUnavailable as error:
            log.error("session worker round failed: %s; retried in %s s", error, idle_seconds)
        except Exception:
            log.exception("session worker round failed; retried in %s s", idle_seconds)
        core.session_wakeup.wait(timeout=idle_seconds)
        core.session_wakeup.clear()
    deadline = time.monotonic() + SESSION_STOP_SECONDS
    for thread in days.values():
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    log.info("session worker stopped")


def _work_day(core: Core, day: dt.date, wait: Callable[[float], bool]) -> None:
    """A day's thread: its session worked until it ends or the worker stops, then the outbox delivered."""
    try:
        if core.run_session.work_day(day, wait):
            core.deliver_outbox(core.clock.now())
    except DatabaseUnavailable as error:
        log.error("session for %s: %s; taken up again at the next round", day, error)
    except Exception:
        log.exception(
            "session for %s: its thread stopped on an unexpected error; taken up again at the next round", day
        )


def start_background(core: Core, stop: threading.Event) -> list:
    """The scheduler and the session worker as daemon threads of this process."""
    threads = [
        threading.Thread(target=run_scheduler, args=(core, stop), name="warehouse-scheduler", daemon=True),
        threading.Thread(target=run_session_worker, args=(core, stop), name="warehouse-session-worker", daemon=True),
    ]
    for thread in threads:
        thread.start()
    return threads


# `warehouse-runner check` tries them in this order: the database first, since the rest is useless without it.
DEPENDENCIES = ("database", "inbound_ftp", "outbound_ftp", "smtp", "remote_log")


def check_dependencies_now(core: Core) -> List[Tuple[str, str]]:
    """Every dependency tried now, once: (name, "ok" or why not). The database line also checks
    that the invoice view has the columns the import and the export need."""
    probes: Dict[str, Callable[[], None]] = dict(core.check_dependencies.probes)
    probes["database"] = lambda: _database_and_view(core)
    results = []
    for name in sorted(probes, key=lambda n: (DEPENDENCIES.index(n) if n in DEPENDENCIES else len(DEPENDENCIES), n)):
        try:
            probes[name]()
        except Exception as error:  # every failure is a line of the report, never a traceback
            results.append((name, " ".join(str(error).split()) or type(error).__name__))
        else:
            results.append((name, "ok"))
    return results


def _database_and_view(core: Core) -> None:
    missing = core.store.missing_view_columns(core.settings.export_columns)
    if missing:
        raise ValueError(
            "the invoice view {} lacks the column{} {}".format(
                core.settings.invoice_view, "s" if len(missing) > 1 else "", ", ".join(missing)
            )
        )
