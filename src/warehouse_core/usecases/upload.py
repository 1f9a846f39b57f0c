"""The upload of a day's export and its rename into place: the worker's steps through the delivery
ledger (SPEC §5; the states and their transitions are delivery_states'). Before the day's invoices
are counted, earlier unknown days are settled; the check before the rename holds the invoices;
what the server says of the rename is recorded as it is learnt.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable, Dict, List, Optional

from warehouse_core.audit import Event, EventKind
from warehouse_core.delivery_states import Delivery, SessionPhase, begin_renaming, record_verdict, rename_verdict
from warehouse_core.errors import TransferError
from warehouse_core.model import SessionState, WorkSession
from warehouse_core.ports import Clock, ExportFiles, MailRenderer, OutboundFiles, Store
from warehouse_core.usecases.day_logs import DayLogs
from warehouse_core.usecases.delivery import in_place, settle_unknown_days

log = logging.getLogger(__name__)
UPLOAD_TRIES = 3
# The detail of a session waiting for an earlier day's delivery to be settled (SPEC §5).
WAITING_FOR = "waiting for the outbound server to say whether the export of {day} reached the consumer"
# The detail of a session waiting for an earlier day's running session to reach its rename.
BEFORE_EARLIER = "waiting for the session of {day} to put its file in place first"
# Why a session fails when an earlier day's delivery stays unknown, or another day holds some of its
# invoices (reasons.py says them in the operator's language).
EARLIER_DAY_SILENT = (
    "the outbound FTP server did not say within {tries} tries whether the export of {day} reached the consumer:"
    " nothing was exported"
)
HELD_ELSEWHERE = (
    "{count} invoice(s) of the export, {invoices}, are held by another day's export that was renamed into place"
    " first: not renamed; ops can retry the day to export it without them"
)
# Why a redelivery's try is not renamed (the upload's failure then says it as its error).
REDELIVERY_LOG_UNREADABLE = "remote log not readable before the rename of a redelivery ({error}): not renamed"

# Waits the given seconds; True when the worker should stop (shutdown).
Wait = Callable[[float], bool]


class SessionFailed(Exception):
    """The run cannot succeed; the message is the reason mailed and shown. ``waited_for``: the
    earlier day whose unknown delivery it failed waiting for (nothing of this day was exported; ops
    can retry it once that day is settled, and the alert says so)."""

    def __init__(self, reason: str, waited_for: Optional[dt.date] = None) -> None:
        super().__init__(reason)
        self.waited_for = waited_for


class HeldElsewhere(SessionFailed):
    """Another day's rename came first and holds some of this export's invoices: not renamed."""


class SessionStopped(Exception):
    """The session was closed by an operator, or the worker is shutting down."""


class SessionClosed(SessionStopped):
    """An operator closed the session: nothing more happens today."""


class WorkerShutdown(SessionStopped):
    """The worker is shutting down; the next worker resumes where this one stopped."""


class WaitingForEarlierDay(WorkerShutdown):
    """An earlier day's delivery is unknown and its own worker (in this process or another) is at
    its rename: that worker asks the server. The later day stays running, its detail naming the
    earlier day; the try is given back and the next round comes back to it, after working the
    earlier day itself if its worker is gone by then (days are worked oldest first)."""


class ClaimLost(SessionStopped):
    """The worker's claim on the session died with its database connection (a restart): another
    worker may hold the session now. It stops; the try counts, so a claim lost at every run ends."""


class Upload:
    def __init__(
        self,
        *,
        store: Store,
        exports: ExportFiles,
        outbound: OutboundFiles,
        clock: Clock,
        backoff: float,
        renderer: Optional[MailRenderer] = None,
    ) -> None:
        self.store = store
        self.renderer = renderer  # a failed earlier day settled never delivered is mailed
        self.exports = exports
        self.outbound = outbound
        self.clock = clock
        self.backoff = backoff  # seconds before the second try, twice as long before each next one

    def require_claim(self, day: dt.date) -> None:
        if not self.store.still_claimed(day):
            raise ClaimLost(
                "the worker lost its claim on the session (the database restarted); stopped before the upload"
            )

    def note(self, day: dt.date, detail: Optional[str]) -> None:
        """The running session's detail: why it waits, a try that failed; None once it moved on."""
        with self.store.unit_of_work() as uow:
            if detail is None:
                uow.update_session(day, clear_detail=True)
            else:
                uow.update_session(day, detail=detail)

    def current(self, day: dt.date) -> WorkSession:
        with self.store.unit_of_work() as uow:
            session = uow.session(day)
        if session is None or session.state is not SessionState.RUNNING:
            raise SessionClosed("no longer running")
        return session

    def settle_earlier_days(self, day: dt.date, wait: Wait) -> None:
        """Before the day's invoices are counted: every earlier day whose delivery is unknown is
        settled first (its invoices may have reached the consumer); while one stays unknown the
        session waits, its detail naming that day. An earlier day still running is its own
        worker's to settle (it is at its rename, the server not asked from here): the session is
        left running for the next round (WaitingForEarlierDay), never failed for it. Otherwise it
        fails like an upload when the outbound server does not answer within the upload tries."""
        on_its_way = self._earlier_before_their_rename(day)
        if on_its_way:
            # Worked side by side (a thread a day), both days would count an invoice they share
            # and the second to rename would fail for it: the later one counts once the earlier
            # one's holds are in place. Its export and upload take minutes; its watch, after the
            # rename, never holds this day up.
            self.note(day, BEFORE_EARLIER.format(day=on_its_way[0]))
            raise WaitingForEarlierDay("waiting for the session of {} to put its file in place".format(on_its_way[0]))
        for attempt in range(1, UPLOAD_TRIES + 1):
            session = self.current(day)
            waiting = settle_unknown_days(
                self.store, self.outbound, before=day, now=self.clock.now, renderer=self.renderer
            )
            if not waiting:
                if session.detail and session.detail.startswith(
                    (WAITING_FOR.partition("{")[0], BEFORE_EARLIER.partition("{")[0])
                ):
                    self.note(day, None)  # the wait is over: its note goes
                return
            silent = [earlier for earlier in waiting if not self._running(earlier)]
            if not silent:
                self.note(day, WAITING_FOR.format(day=waiting[0]))
                raise WaitingForEarlierDay(
                    "waiting for the worker of {} to learn whether its rename went through".format(waiting[0])
                )
            if attempt == UPLOAD_TRIES:
                raise SessionFailed(EARLIER_DAY_SILENT.format(tries=UPLOAD_TRIES, day=silent[0]), waited_for=silent[0])
            self.note(day, WAITING_FOR.format(day=silent[0]))
            if wait(self.backoff * 2 ** (attempt - 1)):
                raise WorkerShutdown("worker shutting down while waiting for an earlier day's delivery")

    def _earlier_before_their_rename(self, day: dt.date) -> List[dt.date]:
        """The earlier days whose session runs, has not asked for its rename yet, and is being
        worked right now (its claim is held, in this process or another). One nobody works (its
        worker stopped on an error, or died) is not waited for: its trouble never holds this day
        up, and should it rename later, this day's holds, if first, keep it from shipping them."""
        with self.store.unit_of_work() as uow:
            sessions = [uow.session(earlier) for earlier in uow.running_days() if earlier < day]
        on_its_way = [
            s.day
            for s in sessions
            if s is not None
            and s.state is SessionState.RUNNING
            and s.phase in (None, SessionPhase.EXPORTING, SessionPhase.UPLOADING)
        ]
        return [earlier for earlier in on_its_way if self._worked(earlier)]

    def _worked(self, day: dt.date) -> bool:
        with self.store.claim_session(day) as claimed:
            return not claimed

    def _running(self, day: dt.date) -> bool:
        with self.store.unit_of_work() as uow:
            session = uow.session(day)
        return session is not None and session.state is SessionState.RUNNING

    def already_delivered(self, session: WorkSession) -> bool:
        """Resumed in phase ``renaming``: whether the rename went through (not: recorded, and
        the phase back to ``uploading``). In ``uploading``: this run never asked for its rename, so
        a final file of that name is an earlier run's (a redelivery's first delivery) and says
        nothing of this one: not delivered. Only a worker from before the ledger (no delivery
        recorded, phase ``renaming`` unknown to it) trusts a final file of the export's size."""
        if session.phase is SessionPhase.RENAMING:
            name = session.export_file or ""
            return self._own_rename(session.day, name, rename_verdict(self.outbound, name))
        return session.delivery is None and in_place(self.outbound, self.exports, session)

    def _begin_renaming(self, day: dt.date, log_positions: Optional[Dict[str, int]]) -> None:
        """The check before the rename: phase renaming, delivery unknown and the invoices held, in
        one transaction that also checks the state (a Close stops the upload here)."""
        self.require_claim(day)
        with self.store.unit_of_work() as uow:
            if not uow.update_session(day, phase=SessionPhase.RENAMING, log_positions=log_positions, clear_detail=True):
                raise SessionClosed("closed by an operator; stopped before the rename")
            current = uow.session(day)
            assert current is not None
            taken = begin_renaming(uow, day, current.delivery)
            if taken:  # rolled back with the phase: nothing of this day is held
                raise HeldElsewhere(
                    HELD_ELSEWHERE.format(
                        count=len(taken), invoices=", ".join(taken[:5]) + (", ..." if len(taken) > 5 else "")
                    )
                )

    def _own_rename(self, day: dt.date, name: str, verdict: Delivery) -> bool:
        """Record what the server said of this worker's own rename; whether it went through. Not
        through: the phase goes back to ``uploading`` (delivery ``no`` releases the holds, and the
        file the fence set aside is removed: the next try uploads afresh)."""
        if verdict is Delivery.YES:
            return True
        with self.store.unit_of_work() as uow:
            current = uow.session(day)
            if current is None or not uow.update_session(day, phase=SessionPhase.UPLOADING, clear_detail=True):
                raise SessionClosed("closed by an operator; Close settles the rename")
            record_verdict(uow, day, current.delivery, verdict)
        if verdict is Delivery.NO:
            self.discard(name)
        return False

    def delivered(self, session: WorkSession) -> WorkSession:
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
            if current is None or not uow.update_session(session.day, phase=SessionPhase.WATCHING, clear_detail=True):
                raise SessionClosed("closed by an operator; stopped")
            record_verdict(uow, session.day, current.delivery, Delivery.YES)
            uow.record_event(uploaded)
            watching = uow.session(session.day)
        assert watching is not None
        return watching

    def upload(self, session: WorkSession, wait: Wait, logs: DayLogs) -> None:
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
            self.require_claim(day)
            # Where the logs end now: only a line written after this rename confirms it (an
            # earlier upload of the same name may have its line there already). Stored with the
            # phase, so that a resumed worker reads from the same place.
            positions: Optional[Dict[str, int]]
            try:
                positions = logs.mark()
            except TransferError as error:
                positions = logs.positions  # those of the upload's start, if they were read
                if positions is None and session.delivery is Delivery.YES:
                    # A redelivery: the log may hold the consumer's line for the first upload of this
                    # name, so a watch that cannot start after it would take that line for this one's.
                    raise TransferError(REDELIVERY_LOG_UNREADABLE.format(error=error)) from None
                log.warning("session for %s: remote log not readable before the rename (%s)", day, error)
            self._begin_renaming(day, positions)
            renaming[0] = True

        try:
            for attempt in range(1, UPLOAD_TRIES + 1):
                self.current(day)
                self.require_claim(day)
                try:
                    if renaming[0]:
                        if self._own_rename(day, name, rename_verdict(self.outbound, name)):
                            log.info("upload of %s: the earlier rename went through; not uploaded again", name)
                            logs.start_at(self.current(day).log_positions)  # as they were at that rename
                            return
                        renaming[0] = False
                    # An earlier run's leftovers go first: a copy its settle set aside and could not
                    # remove (the DELE failed, or the process died before it) would be taken for this
                    # run's temporary file by the questions after the rename (rename_verdict, the
                    # fence). Not removed: this try fails like a refused upload.
                    self.outbound.discard(name)
                    self.outbound.upload(name, lambda: self.exports.open(day, name), before_rename=begin_rename)
                except TransferError as error:
                    log.warning("upload of %s, try %d of %d: %s", name, attempt, UPLOAD_TRIES, error)
                    if attempt < UPLOAD_TRIES:
                        if wait(self.backoff * 2 ** (attempt - 1)):
                            raise WorkerShutdown("worker shutting down during the upload retries") from None
                        continue
                    if renaming[0] and self._last_rename_went_through(session):
                        return
                    if not renaming[0]:  # not renamed: nothing of this upload stays
                        self.discard(name)
                    # Else the server cannot say: failed in phase renaming, delivery unknown, the
                    # invoices held; the runner settles it.
                    raise SessionFailed(
                        "the upload to the outbound FTP server failed after {} tries: {}".format(UPLOAD_TRIES, error)
                    ) from None
                log.info("uploaded %s to %s", name, self.outbound.describe())
                return
        except HeldElsewhere:
            self.discard(name)
            raise
        except SessionClosed:
            if not renaming[0]:
                self.discard(name)
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
        return self._own_rename(session.day, session.export_file or "", verdict)

    def discard(self, name: str) -> None:
        try:
            self.outbound.discard(name)
        except TransferError as error:
            log.warning("could not remove the temporary file of %s (%s); the consumer ignores it", name, error)
