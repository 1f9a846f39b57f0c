"""The operator's session of the day: its status, StartSession and CloseSession (SPEC §5).

Every transition is one conditional UPDATE in the database, so two operators pressing Start at
once get exactly one start, whichever process serves them.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable, Optional, Protocol, TypeVar

from warehouse_core.audit import SYSTEM, Event, EventKind
from warehouse_core.errors import Conflict
from warehouse_core.model import SessionPhase, SessionState, WorkSession
from warehouse_core.ports import Events, FilesAndLines, Sessions, Transactions

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


class ClosingSessions(SessionsWithEvents, FilesAndLines, Protocol):
    """Closing after the file was delivered also records the day's invoices as exported."""


def record_delivered_before_close(uow: ClosingSessions, day: dt.date, export_file: Optional[str]) -> bool:
    """A session closed once its file was in place on the outbound server: the consumer may read
    it, so the day's invoices count as exported (never ``valid`` again on a later day)."""
    if not uow.set_closed_detail(day, DELIVERED_BEFORE_CLOSE.format(file=export_file)):
        return False
    uow.record_exported(day)
    log.warning("session for %s closed after %s was delivered: its invoices are recorded as exported", day, export_file)
    return True


class CloseSession:
    """Closes the day. A session watching the remote log has delivered its file: Close records its
    invoices as exported in the same transaction, whether or not a worker is alive to do it. (A
    worker that renames the file while Close commits does it itself: see RunSession.)"""

    def __init__(self, *, store: Transactions[ClosingSessions]) -> None:
        self.store = store

    def __call__(self, now: dt.datetime, actor: str = SYSTEM) -> WorkSession:
        session = _transition(self.store, now, actor, EventKind.SESSION_CLOSED, self._close)
        log.info("session for %s closed by %s", session.day, actor)
        return session

    @staticmethod
    def _close(uow: ClosingSessions, day: dt.date, now: dt.datetime) -> bool:
        before = uow.session(day)
        if not uow.close_session(day, now):
            return False
        if before is not None and before.state is SessionState.RUNNING and before.phase is SessionPhase.WATCHING:
            record_delivered_before_close(uow, day, before.export_file)
        return True
