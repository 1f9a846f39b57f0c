"""The operator's session of the day: its status, StartSession and CloseSession (SPEC §5).

Every transition is one conditional UPDATE in the database, so two operators pressing Start at
once get exactly one start, whichever process serves them.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Callable, Optional, Protocol

from warehouse_core.audit import SYSTEM, Event, EventKind
from warehouse_core.errors import Conflict
from warehouse_core.model import SessionState, WorkSession
from warehouse_core.ports import Events, Sessions, Transactions

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


def _transition(
    store: Transactions[SessionsWithEvents],
    now: dt.datetime,
    actor: str,
    kind: EventKind,
    change: Callable[[Sessions, dt.date, dt.datetime], bool],
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
    def __init__(self, *, store: Transactions[SessionsWithEvents], wake_worker: Optional[Callable[[], None]] = None) -> None:
        self.store = store
        self.wake_worker = wake_worker or (lambda: None)

    def __call__(self, now: dt.datetime, actor: str = SYSTEM) -> WorkSession:
        session = _transition(
            self.store, now, actor, EventKind.SESSION_STARTED, lambda uow, day, at: uow.start_session(day, at)
        )
        log.info("session for %s started by %s", session.day, actor)
        self.wake_worker()
        return session


class CloseSession:
    def __init__(self, *, store: Transactions[SessionsWithEvents]) -> None:
        self.store = store

    def __call__(self, now: dt.datetime, actor: str = SYSTEM) -> WorkSession:
        session = _transition(
            self.store, now, actor, EventKind.SESSION_CLOSED, lambda uow, day, at: uow.close_session(day, at)
        )
        log.info("session for %s closed by %s", session.day, actor)
        return session
