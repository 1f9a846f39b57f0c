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
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from warehouse_core.audit import Event, EventKind
from warehouse_core.delivery_states import Delivery, begin_renaming, record_verdict, rename_verdict
from warehouse_core.errors import DatabaseUnavailable, TransferError, one_line
from warehouse_core.model import InvoiceStatus, Mail, MailEvent, SessionPhase, SessionState, WorkSession
from warehouse_core.ports import Clock, ExportFiles, MailRenderer, OutboundFiles, RemoteLog, Store
from warehouse_core.usecases.day_logs import DayLogs
from warehouse_core.usecases.delivery import in_place, settle_unknown_days
from warehouse_core.usecases.mails import compose, queue_mail

log = logging.getLogger(__name__)
# Progress is made durable and recorded at most this often (the export file itself is what a
# resumed worker trusts); the close request and shutdown are checked at the same moments.
PROGRESS_INTERVAL = 0.5  # seconds, on the monotonic clock
UPLOAD_TRIES = 3
# An unexpected error (a bug, a broken view, a full disk) is retried at most 3 times (SPEC §5).
SESSION_TRIES = 4

# The detail of a session waiting for an earlier day's delivery to be settled (SPEC §5).
WAITING_FOR = "waiting for the outbound server to say whether the export of {day} reached the consumer"
# A worker resumed in these phases looks for the final file first (SPEC §5).
UPLOAD_PHASES = (SessionPhase.UPLOADING, SessionPhase.RENAMING)

# Waits the given seconds; True when the worker should stop (shutdown).
Wait = Callable[[float], bool]


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


class SessionFailed(Exception):
    """The run cannot succeed; the message is the reason mailed and shown."""


class HeldElsewhere(SessionFailed):
    """Another day's rename came first and holds some of this export's invoices: not renamed."""


class SessionStopped(Exception):
    """The session was closed by an operator, or the worker is shutting down."""


class SessionClosed(SessionStopped):
    """An operator closed the session: nothing more happens today."""


class WorkerShutdown(SessionStopped):
    """The worker is shutting down; the next worker resumes where this one stopped."""


class ClaimLost(SessionStopped):
    """The worker's claim on the session died with its database connection (a restart): another
    worker may hold the session now. It stops; the try counts, so a claim lost at every run ends."""


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

    def run_pending(self, wait: Wait) -> int:
        """Settle every day whose delivery is unknown and whose worker is gone, whatever its date
        (SPEC §5: until the outbound server says), then work every running session this worker
        can claim, oldest first; how many it finished or left. One day's trouble never holds up
        another day's session."""
        settle_unknown_days(self.store, self.outbound)
        with self.store.unit_of_work() as uow:
            days = uow.running_days()
        handled = 0
        for day in days:
            with self.store.claim_session(day) as claimed:
                if not claimed:
                    continue
                try:
                    self.run(day, wait)
                except DatabaseUnavailable:
                    raise
                except Exception:  # the failure path itself failed: the next round takes it up again
                    log.exception("session for %s: the worker stopped on an unexpected error; next round", day)
                handled += 1
        return handled

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
                    "the session's worker stopped {} times without finishing{}".format(
                        SESSION_TRIES, "; last error: " + session.detail if session.detail else " (killed or crashed)"
                    ),
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
                self._fail(day, str(failure))
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
                self._note(
                    day, "try {} of {} failed, retried in {:g} s: {}".format(tries, SESSION_TRIES, backoff, description)
                )
                if wait(backoff):
                    return

    def _run_once(self, day: dt.date, wait: Wait, watch_deadline: List[float]) -> None:
        session = self._current(day)
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

    def _require_claim(self, day: dt.date) -> None:
        if not self.store.still_claimed(day):
            raise ClaimLost(
                "the worker lost its claim on the session (the database restarted); stopped before the upload"
            )

    def _note(self, day: dt.date, detail: str) -> None:
        with self.store.unit_of_work() as uow:
            uow.update_session(day, detail=detail)

    def _current(self, day: dt.date) -> WorkSession:
        with self.store.unit_of_work() as uow:
            session = uow.session(day)
        if session is None or session.state is not SessionState.RUNNING:
            raise SessionClosed("no longer running")
        return session

    def _update(
        self, day: dt.date, event: Optional[Tuple[EventKind, Dict[str, Any]]] = None, **fields: Any
    ) -> WorkSession:
        """Record progress; with ``event``, that step goes into the day's timeline in the same transaction."""
        with self.store.unit_of_work() as uow:
            if not uow.update_session(day, **fields):
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
            self._settle_earlier_days(day, wait)
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
        return self._update(day, progress, processed=written, phase=SessionPhase.UPLOADING)

    def _settle_earlier_days(self, day: dt.date, wait: Wait) -> None:
        """Before the day's invoices are counted: every earlier day whose delivery is unknown is
        settled first (its invoices may have reached the consumer); while one stays unknown the
        session waits, its detail naming that day, and fails like an upload when the outbound
        server does not answer within the upload tries."""
        for attempt in range(1, UPLOAD_TRIES + 1):
            self._current(day)
            waiting = settle_unknown_days(self.store, self.outbound, before=day)
            if not waiting:
                return
            if attempt == UPLOAD_TRIES:
                raise SessionFailed(
                    "the outbound FTP server did not say within {} tries whether the export of {} reached the"
                    " consumer: nothing was exported".format(UPLOAD_TRIES, waiting[0])
                )
            self._note(day, WAITING_FOR.format(day=waiting[0]))
            if wait(self.config.upload_backoff * 2 ** (attempt - 1)):
                raise WorkerShutdown("worker shutting down while waiting for an earlier day's delivery")

    # --- upload ------------------------------------------------------------------------

    def _upload_and_watch(self, session: WorkSession, wait: Wait, resumed: bool, watch_deadline: List[float]) -> None:
        with self._day_logs(session.day) as logs:
            if resumed and self._already_delivered(session):
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
                self._upload(session, wait, logs)
            self._watch(self._delivered(session), logs, wait, watch_deadline)

    def _already_delivered(self, session: WorkSession) -> bool:
        """Resumed in phase ``renaming``: whether the rename went through (not: recorded, and
        the phase back to ``uploading``). In ``uploading`` (a worker from before phase
        ``renaming`` existed): whether the final file has the export's size."""
        if session.phase is SessionPhase.RENAMING:
            return self._own_rename(session.day, rename_verdict(self.outbound, session.export_file or ""))
        return in_place(self.outbound, self.exports, session)

    def _begin_renaming(self, day: dt.date, log_positions: Optional[Dict[str, int]]) -> None:
        """The check before the rename: phase renaming, delivery unknown and the invoices held, in
        one transaction that also checks the state (a Close stops the upload here)."""
        self._require_claim(day)
        with self.store.unit_of_work() as uow:
            if not uow.update_session(day, phase=SessionPhase.RENAMING, log_positions=log_positions):
                raise SessionClosed("closed by an operator; stopped before the rename")
            current = uow.session(day)
            assert current is not None
            taken = begin_renaming(uow, day, current.delivery)
            if taken:  # rolled back with the phase: nothing of this day is held
                raise HeldElsewhere(
                    "{} invoice(s) of the export, {}{}, are held by another day's export that was renamed into"
                    " place first: not renamed; retry the day to export it without them".format(
                        len(taken), ", ".join(taken[:5]), ", ..." if len(taken) > 5 else ""
                    )
                )

    def _own_rename(self, day: dt.date, verdict: Delivery) -> bool:
        """Record what the server said of this worker's own rename; whether it went through. Not
        through: the phase goes back to ``uploading`` (delivery ``no`` releases the holds)."""
        if verdict is Delivery.YES:
            return True
        with self.store.unit_of_work() as uow:
            current = uow.session(day)
            if current is None or not uow.update_session(day, phase=SessionPhase.UPLOADING):
                raise SessionClosed("closed by an operator; Close settles the rename")
            record_verdict(uow, day, current.delivery, verdict)
        return False

    def _delivered(self, session: WorkSession) -> WorkSession:
        """The rename went through: phase watching and delivery yes, with the uploaded event. Closed
        meanwhile: Close found phase renaming and settles the delivery with the server."""
        uploaded = Event(
            session.day,
            EventKind.SESSION_UPLOADED,
            self.clock.now(),
            detail={"file": session.export_file, "server": self.outbound.describe()},
        )
        with self.store.unit_of_work() as uow:
            current = uow.session(session.day)
            if current is None or not uow.update_session(session.day, phase=SessionPhase.WATCHING):
                raise SessionClosed("closed by an operator; stopped")
            record_verdict(uow, session.day, current.delivery, Delivery.YES)
            uow.record_event(uploaded)
            watching = uow.session(session.day)
        assert watching is not None
        return watching

    def _upload(self, session: WorkSession, wait: Wait, logs: DayLogs) -> None:
        """Upload with retries. The state and the claim are checked before every try; before the
        rename, the state is checked in the same transaction that sets phase ``renaming`` and holds
        the invoices, so a close stops the upload there. Once a try asked for the rename the
        temporary file is the fence: the next try first asks whether the rename went through (its
        reply lost) and records what the server said. Closed in phase ``renaming``, Close settles
        it and the worker leaves the file alone."""
        name = session.export_file
        assert name is not None
        day = session.day
        renaming = [False]

        def begin_rename() -> None:
            self._require_claim(day)
            # Where the logs end now: only a line written after this rename confirms it (an
            # earlier upload of the same name may have its line there already). Stored with the
            # phase, so that a resumed worker reads from the same place.
            positions: Optional[Dict[str, int]]
            try:
                positions = logs.mark()
            except TransferError as error:
                positions = logs.positions  # those of the upload's start, if they were read
                log.warning("session for %s: remote log not readable before the rename (%s)", day, error)
            self._begin_renaming(day, positions)
            renaming[0] = True

        try:
            for attempt in range(1, UPLOAD_TRIES + 1):
                self._current(day)
                self._require_claim(day)
                try:
                    if renaming[0]:
                        if self._own_rename(day, rename_verdict(self.outbound, name)):
                            log.info("upload of %s: the earlier rename went through; not uploaded again", name)
                            logs.start_at(self._current(day).log_positions)  # as they were at that rename
                            return
                        renaming[0] = False
                    self.outbound.upload(name, lambda: self.exports.open(day, name), before_rename=begin_rename)
                except TransferError as error:
                    log.warning("upload of %s, try %d of %d: %s", name, attempt, UPLOAD_TRIES, error)
                    if attempt < UPLOAD_TRIES:
                        if wait(self.config.upload_backoff * 2 ** (attempt - 1)):
                            raise WorkerShutdown("worker shutting down during the upload retries") from None
                        continue
                    if renaming[0] and self._last_rename_went_through(session):
                        return
                    if not renaming[0]:  # not renamed: nothing of this upload stays
                        self._discard(name)
                    # Else the server cannot say: failed in phase renaming, delivery unknown, the
                    # invoices held; the runner settles it.
                    raise SessionFailed(
                        "the upload to the outbound FTP server failed after {} tries: {}".format(UPLOAD_TRIES, error)
                    ) from None
                log.info("uploaded %s to %s", name, self.outbound.describe())
                return
        except HeldElsewhere:
            self._discard(name)
            raise
        except SessionClosed:
            if not renaming[0]:
                self._discard(name)
            raise

    def _last_rename_went_through(self, session: WorkSession) -> bool:
        """The last try asked for the rename and saw an error: whether the rename went through
        anyway (its reply lost). Not: recorded, the phase back to uploading. The server cannot say:
        False, and the phase stays renaming with delivery unknown."""
        try:
            verdict = rename_verdict(self.outbound, session.export_file or "")
        except TransferError as error:
            log.warning("session for %s: could not ask whether the rename went through (%s)", session.day, error)
            return False
        went_through = self._own_rename(session.day, verdict)
        if not went_through and verdict is Delivery.NO:
            self._discard(session.export_file or "")
        return went_through

    def _discard(self, name: str) -> None:
        try:
            self.outbound.discard(name)
        except TransferError as error:
            log.warning("could not remove the temporary file of %s (%s); the consumer ignores it", name, error)

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
                reason = "no confirmation of {} in the remote log within {:g} s".format(name, self.config.log_timeout)
                if last_problem:
                    reason += " (the log could not be read: {})".format(last_problem)
                raise SessionFailed(reason)
            self._current(session.day)  # closed while watching: Close recorded the delivery
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
                    session=finished,
                    not_present=uow.invoices_with_status(session.day, InvoiceStatus.NOT_FOUND),
                ),
                now,
            )
        log.info(
            "session for %s completed: %d lines in %s confirmed", session.day, session.processed, session.export_file
        )

    def _fail(self, day: dt.date, reason: str) -> None:
        """Failed, with the alert; nothing in here may keep the session running (SPEC §5 "The
        failure path cannot fail"): no question to the outbound server, and the alert is composed
        before the transaction (a customer's broken template falls back to the built-in one; should
        that fail too, the session fails without it, logged). Failed while watching, the file had
        reached the consumer: delivery yes. Failed in phase renaming: delivery stays unknown with
        the invoices held, and the runner settles it with the server."""
        now = self.clock.now()
        with self.store.unit_of_work() as uow:
            before = uow.session(day)
        if before is None or before.state is not SessionState.RUNNING:
            return
        mail = self._alert(replace(before, state=SessionState.FAILED, finished_at=now, detail=reason), reason)
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

    def _alert(self, failed: WorkSession, reason: str) -> Optional[Mail]:
        try:
            return compose(self.renderer, MailEvent.SESSION_FAILED, failed.day, session=failed, reason=reason)
        except Exception:
            log.exception("session for %s: the alert could not be written, even from the built-in template", failed.day)
            return None


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
