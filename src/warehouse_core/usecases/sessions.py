"""The operator's session of the day: its status, StartSession and CloseSession (SPEC §5).

Every transition is one conditional UPDATE in the database, so two operators pressing Start at
once get exactly one start, whichever process serves them.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Callable, Optional

from warehouse_core.errors import Conflict
from warehouse_core.model import SessionState, WorkSession
from warehouse_core.ports import Sessions, Transactions

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


def _transition(
    store: Transactions[Sessions], now: dt.datetime, change: Callable[[Sessions, dt.date, dt.datetime], bool]
) -> WorkSession:
    """Apply one conditional state change to today's session; the refusal when it did not apply."""
    day = now.date()
    with store.unit_of_work() as uow:
        changed = change(uow, day, now)
        session = uow.session(day) or WorkSession(day=day, state=SessionState.NONE)
    if not changed:
        raise refusal(session)
    return session


class StartSession:
    def __init__(self, *, store: Transactions[Sessions], wake_worker: Optional[Callable[[], None]] = None) -> None:
        self.store = store
        self.wake_worker = wake_worker or (lambda: None)

    def __call__(self, now: dt.datetime) -> WorkSession:
        session = _transition(self.store, now, lambda uow, day, at: uow.start_session(day, at))
        log.info("session for %s started", session.day)
        self.wake_worker()
        return session


class CloseSession:
    def __init__(self, *, store: Transactions[Sessions]) -> None:
        self.store = store

    def __call__(self, now: dt.datetime) -> WorkSession:
        session = _transition(self.store, now, lambda uow, day, at: uow.close_session(day, at))
        log.info("session for %s closed by an operator", session.day)
        return session
