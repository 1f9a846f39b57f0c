"""RunSession: the background work of a started session, resumable at every step.

Export → upload → watch the remote log. The step reached is stored in the database and the
export file itself says how many lines were written (every line is fsynced before progress is
recorded), so a worker that picks up a session whose process died continues exactly where the
file ends: no line is written twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Tuple, Union

from warehouse_core.audit import Event, EventKind
from warehouse_core.delivery_states import Delivery, record_verdict
from warehouse_core.errors import DatabaseUnavailable, TransferError, one_line
from warehouse_core.model import InvoiceStatus, Mail, MailEvent, SessionPhase, SessionState, WorkSession
from warehouse_core.ports import Clock, ExportFiles, MailRenderer, OutboundFiles, RemoteLog, Store
from warehouse_core.usecases.day_logs import DayLogs
from warehouse_core.usecases.delivery import settle_unknown_days
from warehouse_core.usecases.mails import compose, queue_mail
from warehouse_core.usecases.upload import (
    ClaimLost,
    SessionClosed,
    SessionFailed,
    SessionStopped,
    Upload,
    Wait,
    WorkerShutdown,
)

log = logging.getLogger(__name__)
# Why a session whose worker kept stopping ends failed (reasons.py says them in the operator's language).
WORKER_STOPPED = "the session's worker stopped {tries} times without finishing (killed or crashed)"
WORKER_STOPPED_LAST_ERROR = "the session's worker stopped {tries} times without finishing; last error: {error}"
# Why a watch fails when no line of the consumer's confirmed the export in time (reasons.py).
NO_CONFIRMATION = "no confirmation of {file} in the remote log within {seconds} s"
NO_CONFIRMATION_UNREADABLE = (
    "no confirmation of {file} in the remote log within {seconds} s (the log could not be read: {error})"
)
# Progress is made durable and recorded at most this often (the export file itself is what a
# resumed worker trusts); the close request and shutdown are checked at the same moments.
PROGRESS_INTERVAL = 0.5  # seconds, on the monotonic clock
# An unexpected error (a bug, a broken view, a full disk) is retried at most 3 times (SPEC §5).
SESSION_TRIES = 4

# A worker resumed in these phases looks for the final file first (SPEC §5).
UPLOAD_PHASES = (SessionPhase.UPLOADING, SessionPhase.RENAMING)


@dataclass(frozen=True)
class SessionConfig:
    export_columns: Tuple[str, ...]
    export_name: str
    remote_log_path: str
    success_pattern: str
    error_pattern: str
    log_timeout: float
    log_interval: float
    upload_backoff: float = 2.0
    # Seconds before the first retry after an unexpected error; three times longer each retry.
    error_backoff: float = 10.0


class RunSession:
    def __init__(
        self,
        *,
        store: Store,
        exports: ExportFiles,
        outbound: OutboundFiles,
        remote_log: RemoteLog,
        renderer: MailRenderer,
        clock: Clock,
        config: SessionConfig,
    ) -> None:
        self.store = store
        self.exports = exports
        self.outbound = outbound
        self.remote_log = remote_log
        self.renderer = renderer
        self.clock = clock
        self.config = config
        self.uploads = Upload(
            store=store,
            exports=exports,
            outbound=outbound,
            clock=clock,
            backoff=config.upload_backoff,
            renderer=renderer,
        )

    def run_pending(self, wait: Wait) -> int:
        """One round of the work, in the caller's thread: every running day in turn
        (``running_days``, ``work_day``); how many sessions it finished or left. The daemon works
        each day in a thread of its own instead (warehouse_runner.jobs.run_session_worker)."""
        return sum(self.work_day(day, wait) for day in self.running_days())

    def running_days(self) -> List[dt.date]:
        """Settle every day whose delivery is unknown and whose worker is gone, whatever its date
        (SPEC §5: until the outbound server says); then the days whose session runs, oldest first."""
        settle_unknown_days(self.store, self.outbound, now=self.clock.now, renderer=self.renderer)
        with self.store.unit_of_work() as uow:
            return uow.running_days()

    def work_day(self, day: dt.date, wait: Wait) -> bool:
        """Claim the day's session and work it; whether this worker could claim it (a claim is
        held by one worker at a time, in whichever process). One day's trouble never holds up
        another day's session: an unexpected error is logged, and the next round takes it up."""
        with self.store.claim_session(day) as claimed:
            if not claimed:
                return False
            try:
                self.run(day, wait)
            except DatabaseUnavailable:
                raise
            except Exception:  # the failure path itself failed: the next round takes it up again
                log.exception("session for %s: the worker stopped on an unexpected error; next round", day)
            return True

    def run(self, day: dt.date, wait: Wait) -> None:
        """Work the session until it ends or the worker stops. An unexpected error is retried with
        backoff; the tries are counted in the database, so that a worker dying at the same place
        after every restart also ends, with the session ``failed``, never ``running`` for good.
        A database outage is not such an error: the try it interrupted is given back, and the
        worker waits for the database as long as it takes."""
        owed = 0  # tries an outage interrupted, given back once the database answers
        watch_deadline: List[float] = []  # the remote-log deadline, kept across outages within this try
        while True:
            try:
                with self.store.unit_of_work() as uow:
                    for _ in range(owed):
                        uow.end_session_try(day)
                    tries = uow.begin_session_try(day)
                    session = uow.session(day)
            except DatabaseUnavailable as outage:
                if self._wait_for_the_database(day, outage, wait):
                    return
                continue
            owed = 0
            if tries is None or session is None:
                return
            if tries > SESSION_TRIES:
                self._fail(
                    day,
                    WORKER_STOPPED_LAST_ERROR.format(tries=SESSION_TRIES, error=session.detail)
                    if session.detail
                    else WORKER_STOPPED.format(tries=SESSION_TRIES),
                )
                return
            try:
                self._run_once(day, wait, watch_deadline)
                return
            except ClaimLost as lost:
                log.warning("session for %s: %s", day, lost)
                return
            except WorkerShutdown as stopped:
                with self.store.unit_of_work() as uow:
                    uow.end_session_try(day)
                log.info("session for %s: %s", day, stopped)
                return
            except SessionStopped as stopped:
                log.info("session for %s: %s", day, stopped)
                return
            except SessionFailed as failure:
                self._fail(day, str(failure), failure.waited_for)
                return
            except DatabaseUnavailable as outage:
                owed = 1
                if self._wait_for_the_database(day, outage, wait):
                    return
                continue
            except Exception as error:  # a bug, a broken view, a full disk: retried, then failed
                description = one_line(error)
                log.exception("session for %s: try %d of %d failed", day, tries, SESSION_TRIES)
                if tries >= SESSION_TRIES:
                    self._fail(day, description)
                    return
                backoff = self.config.error_backoff * 3 ** (tries - 1)
                self.uploads.note(
                    day, "try {} of {} failed, retried in {:g} s: {}".format(tries, SESSION_TRIES, backoff, description)
                )
                if wait(backoff):
                    return

    def _run_once(self, day: dt.date, wait: Wait, watch_deadline: List[float]) -> None:
        session = self.uploads.current(day)
        resumed_in_upload = session.phase in UPLOAD_PHASES
        if session.phase in (None, SessionPhase.EXPORTING):
            session = self._export(session, wait)
        if session.phase in UPLOAD_PHASES:
            self._upload_and_watch(session, wait, resumed_in_upload, watch_deadline)
        else:
            with self._day_logs(day) as logs:
                logs.start_at(session.log_positions)  # where the logs ended at the rename
                self._watch(session, logs, wait, watch_deadline)

    def _wait_for_the_database(self, day: dt.date, outage: DatabaseUnavailable, wait: Wait) -> bool:
        """One line per look while the database is away; True when the worker should stop: told
        to, or its claim on the session did not survive the outage (a database restart ends it)."""
        log.warning(
            "session for %s: %s; looking again in %g s (not counted as a try)", day, outage, self.config.error_backoff
        )
        if wait(self.config.error_backoff):
            return True
        if not self.store.still_claimed(day):
            log.warning("session for %s: the claim on the session ended with the outage; the next round claims it", day)
            return True
        return False

    def _update(
        self,
        day: dt.date,
        event: Optional[Tuple[EventKind, Dict[str, Any]]] = None,
        *,
        moved_on: bool = False,
        **fields: Any,
    ) -> WorkSession:
        """Record progress; with ``event``, that step goes into the day's timeline in the same
        transaction. ``moved_on``: the step is done (the export written), so a note of a failed try
        goes; kept until then, so that a worker dying mid-step fails naming the last error."""
        with self.store.unit_of_work() as uow:
            if not uow.update_session(day, clear_detail=moved_on, **fields):
                raise SessionClosed("closed by an operator; stopped")
            if event is not None:
                uow.record_event(Event(day, event[0], self.clock.now(), detail=event[1]))
            session = uow.session(day)
        assert session is not None
        return session

    # --- export ------------------------------------------------------------------------

    def _export(self, session: WorkSession, wait: Wait) -> WorkSession:
        day = session.day
        if session.export_file is None:
            self.uploads.settle_earlier_days(day, wait)
            with self.store.unit_of_work() as uow:
                total = uow.refresh_invoice_statuses(day)
            name = self.config.export_name.format(date=day.strftime("%Y%m%d"), records=total)
            session = self._update(day, phase=SessionPhase.EXPORTING, total=total, processed=0, export_file=name)
            log.info("session for %s: %d valid lines to export into %s", day, total, name)
        if session.total == 0:
            raise SessionFailed("no records to generate: the day has no valid invoice line")
        export_file = session.export_file
        assert export_file is not None
        written = self.exports.complete_lines(day, export_file)
        if written:
            log.info("session for %s: resuming the export after line %d of %d", day, written, session.total)
            resumed = (
                EventKind.SESSION_PROGRESS,
                {"file": export_file, "resumed_after": written, "total": session.total},
            )
            session = self._update(day, resumed)
        next_progress = self.clock.monotonic() + PROGRESS_INTERVAL
        with self.exports.writer(day, export_file, keep_lines=written) as writer:
            with self.store.export_lines(day, self.config.export_columns, skip=written) as blocks:
                for block in blocks:
                    writer.write(block)
                    written += block.count(b"\n")
                    if self.clock.monotonic() >= next_progress:
                        writer.sync()
                        self._update(day, processed=written)
                        if wait(0):
                            raise WorkerShutdown("worker shutting down; resumed at the next start")
                        next_progress = self.clock.monotonic() + PROGRESS_INTERVAL
            writer.sync()
        if written != session.total:
            raise SessionFailed(
                "the export has {} lines but {} valid lines were counted at the start".format(written, session.total)
            )
        log.info("session for %s: %d lines written to %s", day, written, export_file)
        progress = (EventKind.SESSION_PROGRESS, {"file": export_file, "written": written, "total": session.total})
        return self._update(day, progress, moved_on=True, processed=written, phase=SessionPhase.UPLOADING)

    # --- upload ------------------------------------------------------------------------

    def _upload_and_watch(self, session: WorkSession, wait: Wait, resumed: bool, watch_deadline: List[float]) -> None:
        with self._day_logs(session.day) as logs:
            if resumed and self.uploads.already_delivered(session):
                # Renamed into place before the worker stopped: the consumer may have read it and
                # logged its confirmation already, so the logs are read from where they ended at
                # the rename (from the start when that is not known).
                logs.start_at(session.log_positions)
                log.info(
                    "session for %s: %s is already on the outbound server; not uploaded again",
                    session.day,
                    session.export_file,
                )
            else:
                try:
                    logs.mark()
                except TransferError as error:
                    log.warning("remote log not readable before the upload (%s); reading it from the start", error)
                self.uploads.upload(session, wait, logs)
            self._watch(self.uploads.delivered(session), logs, wait, watch_deadline)

    # --- remote log ----------------------------------------------------------------------

    def _day_logs(self, day: dt.date) -> DayLogs:
        return DayLogs(self.remote_log, self.config.remote_log_path, day, self.clock)

    def _watch(self, session: WorkSession, follower: DayLogs, wait: Wait, watch_deadline: List[float]) -> None:
        """Until the remote log says, or the timeout: measured from the first look of this try, so
        a database outage that makes the worker start over does not extend it."""
        name = session.export_file
        assert name is not None
        if not watch_deadline:
            watch_deadline.append(self.clock.monotonic() + self.config.log_timeout)
        deadline = watch_deadline[0]
        success = re.compile(self.config.success_pattern)
        error = re.compile(self.config.error_pattern)
        last_problem: Optional[str] = None
        while True:
            verdict: Union[bool, str, None] = None
            try:
                for line in follower.read_new():  # streamed: the lines are read as they are looked at
                    verdict = _verdict(line, name, session.processed, success, error)
                    if verdict:
                        break
                last_problem = None
            except TransferError as problem:
                log.warning("remote log %s: %s", self.remote_log.describe(), problem)
                last_problem = str(problem)
            if verdict is True:
                self._complete(session)
                return
            if verdict:
                raise SessionFailed(verdict)
            if self.clock.monotonic() >= deadline:
                seconds = "{:g}".format(self.config.log_timeout)
                if last_problem:
                    raise SessionFailed(
                        NO_CONFIRMATION_UNREADABLE.format(file=name, seconds=seconds, error=last_problem)
                    )
                raise SessionFailed(NO_CONFIRMATION.format(file=name, seconds=seconds))
            current = self.uploads.current(session.day)  # closed while watching: Close recorded the delivery
            if current.detail and last_problem is None:  # the log answers again: a failed try's note goes
                self.uploads.note(session.day, None)
            if wait(self.config.log_interval):
                raise WorkerShutdown("worker shutting down while watching the remote log")

    # --- outcome -------------------------------------------------------------------------

    def _complete(self, session: WorkSession) -> None:
        now = self.clock.now()
        with self.store.unit_of_work() as uow:
            if not uow.finish_session(session.day, SessionState.COMPLETED, now, None):
                return
            finished = uow.session(session.day)
            assert finished is not None
            record_verdict(uow, session.day, finished.delivery, Delivery.YES)  # the consumer's log names it
            uow.record_event(
                Event(
                    session.day,
                    EventKind.SESSION_CONFIRMED,
                    now,
                    detail={
                        "file": session.export_file,
                        "records": session.processed,
                    },
                )
            )
            queue_mail(
                uow,
                compose(
                    self.renderer,
                    MailEvent.SESSION_COMPLETED,
                    session.day,
                    invoices={"not_present": uow.invoices_with_status(session.day, InvoiceStatus.NOT_FOUND)},
                    session=finished,
                ),
                now,
            )
        log.info(
            "session for %s completed: %d lines in %s confirmed", session.day, session.processed, session.export_file
        )

    def _fail(self, day: dt.date, reason: str, waited_for: Optional[dt.date] = None) -> None:
        """Failed, with the alert; nothing in here may keep the session running (SPEC §5 "The
        failure path cannot fail"): no question to the outbound server, and the alert is composed
        before the transaction (a customer's broken template falls back to the built-in one; should
        that fail too, the session fails without it, logged). Failed while watching, the file had
        reached the consumer: delivery yes. Failed in phase renaming: delivery stays unknown with
        the invoices held, and the runner settles it with the server."""
        now = self.clock.now()
        with self.store.unit_of_work() as uow:
            before = uow.session(day)
            unknown = before is not None and before.delivery is Delivery.UNKNOWN
            redelivery = unknown and _redelivering(uow.events_of_day(day))
        if before is None or before.state is not SessionState.RUNNING:
            return
        # The alert says what the day's delivery is once failed: a file being watched had reached the consumer.
        delivery = Delivery.YES if before.phase is SessionPhase.WATCHING else before.delivery
        failed = replace(before, state=SessionState.FAILED, finished_at=now, detail=reason, delivery=delivery)
        mail = self._alert(failed, reason, waited_for, redelivery)
        with self.store.unit_of_work() as uow:
            current = uow.session(day)
            if current is None or not uow.finish_session(day, SessionState.FAILED, now, reason):
                return
            if current.phase is SessionPhase.WATCHING:
                record_verdict(uow, day, current.delivery, Delivery.YES)
            uow.record_event(Event(day, EventKind.SESSION_FAILED, now, detail={"reason": reason}))
            if mail is not None:
                queue_mail(uow, mail, now)
        log.error("session for %s failed: %s", day, reason)

    def _alert(
        self, failed: WorkSession, reason: str, waited_for: Optional[dt.date], redelivery: bool = False
    ) -> Optional[Mail]:
        try:
            return compose(
                self.renderer,
                MailEvent.SESSION_FAILED,
                failed.day,
                session=failed,
                reason=reason,
                waited_for=waited_for,
                redelivery=redelivery,
            )
        except Exception:
            log.exception("session for %s: the alert could not be written, even from the built-in template", failed.day)
            return None


def _redelivering(events: List[Event]) -> bool:
    """Whether the day's run is a redelivery: its last retry was asked with --redeliver, so its
    first delivery reached the consumer and its invoices stay exported whatever this run's verdict."""
    retried = [event for event in events if event.kind is EventKind.SESSION_RETRIED]
    return bool(retried and retried[-1].detail.get("redeliver"))


def _verdict(line: str, name: str, expected: int, success: Any, error: Any) -> Union[bool, str, None]:
    """True when the line confirms the export; a reason when it reports a failure; else None."""
    match = success.search(line)
    if match and _same_file(match.group("file"), name):
        records = int(match.group("records"))
        if records == expected:
            return True
        return "the remote log reports {} records read from {}, but {} were written".format(records, name, expected)
    match = error.search(line)
    if match and _same_file(match.group("file"), name):
        return "the remote log reports an error for {}: {}".format(name, line.strip())
    return None


def _same_file(logged: str, name: str) -> bool:
    return logged.replace("\\", "/").rsplit("/", 1)[-1] == name
