"""The operator's session of the day: its status, StartSession and CloseSession (SPEC §5).

Every transition is one conditional UPDATE in the database, so two operators pressing Start at
once get exactly one start, whichever process serves them.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable, List, Optional, Protocol, TypeVar

from warehouse_core.audit import SYSTEM, Event, EventKind
from warehouse_core.errors import Conflict, TransferError, one_line
from warehouse_core.model import SessionPhase, SessionState, WorkSession
from warehouse_core.ports import Events, FilesAndLines, OutboundFiles, Sessions, Transactions

log = logging.getLogger(__name__)

# The refusal's code in each state; its sentence is in templates/messages.txt.
REFUSALS = {
    SessionState.NONE: "no_data",
    SessionState.RUNNING: "running",
    SessionState.COMPLETED: "completed",
    SessionState.FAILED: "failed",
    SessionState.CLOSED: "closed",
    SessionState.READY: "ready",
}


def refusal(session: WorkSession) -> Conflict:
    return Conflict(code=REFUSALS[session.state], state=session.state.value, day=session.day.isoformat())


def session_status(store: Transactions[Sessions], day: dt.date) -> WorkSession:
    """The day's session; state ``none`` when the day has no data."""
    with store.unit_of_work() as uow:
        session = uow.session(day)
    return session or WorkSession(day=day, state=SessionState.NONE)


class SessionsWithEvents(Sessions, Events, Protocol):
    """An operator's action changes the session and says so in the day's events, in one transaction."""


Role = TypeVar("Role", bound=SessionsWithEvents)


def _transition(
    store: Transactions[Role],
    now: dt.datetime,
    actor: str,
    kind: EventKind,
    change: Callable[[Role, dt.date, dt.datetime], bool],
) -> WorkSession:
    """Apply one conditional state change to today's session; the refusal when it did not apply."""
    day = now.date()
    with store.unit_of_work() as uow:
        uow.lock_session(day)  # a worker's commit cannot slip between what is read and the change
        before = uow.session(day)
        changed = change(uow, day, now)
        session = uow.session(day) or WorkSession(day=day, state=SessionState.NONE)
        if changed:
            previous = before.state.value if before is not None else SessionState.NONE.value
            uow.record_event(Event(day, kind, now, actor, {"from": previous}))
    if not changed:
        raise refusal(session)
    return session


class StartSession:
    def __init__(
        self, *, store: Transactions[SessionsWithEvents], wake_worker: Optional[Callable[[], None]] = None
    ) -> None:
        self.store = store
        self.wake_worker = wake_worker or (lambda: None)

    def __call__(self, now: dt.datetime, actor: str = SYSTEM) -> WorkSession:
        session = _transition(
            self.store, now, actor, EventKind.SESSION_STARTED, lambda uow, day, at: uow.start_session(day, at)
        )
        log.info("session for %s started by %s", session.day, actor)
        self.wake_worker()
        return session


DELIVERED_BEFORE_CLOSE = (
    "closed by an operator after {file} was delivered to the outbound server; its invoices are recorded as exported"
)
MAYBE_DELIVERED_BEFORE_CLOSE = (
    "closed by an operator while {file} was being renamed into place; whether it was delivered could not be"
    " checked ({error}), so its invoices are recorded as exported: redeliver by hand if the consumer lacks it"
)


class ClosingSessions(SessionsWithEvents, FilesAndLines, Protocol):
    """Closing after the file was delivered also records the day's invoices as exported."""


def record_delivered_before_close(
    uow: ClosingSessions, day: dt.date, export_file: Optional[str], detail: Optional[str] = None
) -> bool:
    """A session closed once its file was in place on the outbound server: the consumer may read
    it, so the day's invoices count as exported (never ``valid`` again on a later day)."""
    if not uow.set_closed_detail(day, detail or DELIVERED_BEFORE_CLOSE.format(file=export_file)):
        return False
    uow.record_exported(day)
    log.warning("session for %s closed after %s was delivered: its invoices are recorded as exported", day, export_file)
    return True


class CloseSession:
    """Closes the day, and settles what a running session's worker had done, whether or not a
    worker is alive to do it, in the same transaction, the session's row locked:

    - ``watching``: the file was delivered; its invoices are recorded as exported.
    - ``renaming`` (the worker passed its last check and asked for the rename): Close removes the
      temporary file itself, a fence against the rename. Removed: no rename can follow (the
      worker's RNFR or RNTO finds nothing), nothing was delivered. Not there: the rename went
      through, and the invoices are recorded as exported. When the server cannot be asked, the
      file counts as delivered (shipping the invoices twice is the worse mistake) and the detail
      says so. The worker, finding the session closed, leaves the file alone.
    - ``uploading``: nothing was delivered, and no worker renames after the close (its step into
      ``renaming`` is conditional on the state). Once the close has committed, a temporary file a
      dead worker left is removed (best effort: the consumer ignores it).
    """

    def __init__(self, *, store: Transactions[ClosingSessions], outbound: Optional[OutboundFiles] = None) -> None:
        self.store = store
        self.outbound = outbound

    def __call__(self, now: dt.datetime, actor: str = SYSTEM) -> WorkSession:
        undelivered: List[str] = []  # the export file of an upload the close stopped before the rename
        session = _transition(
            self.store,
            now,
            actor,
            EventKind.SESSION_CLOSED,
            lambda uow, day, at: self._close(uow, day, at, undelivered),
        )
        log.info("session for %s closed by %s", session.day, actor)
        for name in undelivered:
            try:
                self._discard(name)
            except TransferError as error:
                log.warning("session for %s: the temporary file of %s stays (%s)", session.day, name, error)
        return session

    def _discard(self, name: str) -> bool:
        """Whether a temporary file of ``name`` was there and is removed."""
        if self.outbound is None:
            raise TransferError("no outbound server is configured in this process")
        return self.outbound.discard(name)

    def _close(self, uow: ClosingSessions, day: dt.date, now: dt.datetime, undelivered: List[str]) -> bool:
        before = uow.session(day)
        if not uow.close_session(day, now):
            return False
        if before is None or before.state is not SessionState.RUNNING or not before.export_file:
            return True
        if before.phase is SessionPhase.WATCHING:
            record_delivered_before_close(uow, day, before.export_file)
        elif before.phase is SessionPhase.RENAMING:
            self._fence_the_rename(uow, before)
        elif before.phase is SessionPhase.UPLOADING:
            undelivered.append(before.export_file)
        return True

    def _fence_the_rename(self, uow: ClosingSessions, session: WorkSession) -> None:
        try:
            if self._discard(session.export_file or ""):
                log.info(
                    "session for %s: closed before the rename of %s; nothing delivered",
                    session.day,
                    session.export_file,
                )
                return
        except TransferError as error:
            log.warning("session for %s: the outbound server could not be asked at Close: %s", session.day, error)
            detail = MAYBE_DELIVERED_BEFORE_CLOSE.format(file=session.export_file, error=one_line(error))
            record_delivered_before_close(uow, session.day, session.export_file, detail)
            return
        record_delivered_before_close(uow, session.day, session.export_file)
