"""The operator's session of the day: its status, StartSession and CloseSession (SPEC §5).

Every transition is one conditional UPDATE in the database, so two operators pressing Start at
once get exactly one start, whichever process serves them.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Callable, Dict, List, Optional, Protocol, TypeVar

from warehouse_core.audit import SYSTEM, Event, EventKind
from warehouse_core.delivery_states import attention_window, record_verdict
from warehouse_core.errors import Conflict, TransferError
from warehouse_core.model import Delivery, SessionPhase, SessionState, WorkSession
from warehouse_core.ports import Events, OutboundFiles, Sessions, Transactions
from warehouse_core.usecases.delivery import (
    DELIVERED_BEFORE_CLOSE,
    SETTLING_AT_CLOSE,
    LedgerRoles,
    closed_after_failing,
    settle,
)

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


def refusal(session: WorkSession, today: dt.date) -> Conflict:
    """Why the action does not apply; an earlier day's refusal does not speak of "today"."""
    values: Dict[str, Any] = {"day": session.day.isoformat()}
    if session.day < today:
        values["earlier"] = True
    return Conflict(code=REFUSALS[session.state], state=session.state.value, **values)


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
    day: Optional[dt.date] = None,
    reason: Optional[str] = None,
) -> WorkSession:
    """Apply one conditional state change to ``day``'s session (today's by default); the refusal
    when it did not apply."""
    day = day or now.date()
    with store.unit_of_work() as uow:
        uow.lock_session(day)  # a worker's commit cannot slip between what is read and the change
        before = uow.session(day)
        changed = change(uow, day, now)
        session = uow.session(day) or WorkSession(day=day, state=SessionState.NONE)
        if changed:
            previous = before.state.value if before is not None else SessionState.NONE.value
            detail = {"from": previous} if reason is None else {"from": previous, "reason": reason}
            uow.record_event(Event(day, kind, now, actor, detail))
    if not changed:
        raise refusal(session, now.date())
    return session


def _retried_and_ready(uow: Sessions, day: dt.date, today: dt.date) -> bool:
    """An earlier day may be started when it is among the days that need someone as ``ready``:
    ops retried it (the ledger's rule, delivery_states.needs_someone)."""
    since, until = attention_window(today)
    return any(s.day == day and s.state is SessionState.READY for s in uow.days_needing_attention(until, since))


class StartSession:
    def __init__(
        self, *, store: Transactions[SessionsWithEvents], wake_worker: Optional[Callable[[], None]] = None
    ) -> None:
        self.store = store
        self.wake_worker = wake_worker or (lambda: None)

    def __call__(self, now: dt.datetime, actor: str = SYSTEM, day: Optional[dt.date] = None) -> WorkSession:
        """Start today's session, or ``day``'s: an earlier day only when ops retried it and it is
        ``ready`` (SPEC §5 "Earlier days are never out of reach"), once, as today's."""
        today = now.date()
        if day is not None and day < today:
            try:
                return self._start(now, actor, day, lambda uow, d: _retried_and_ready(uow, d, today))
            except Conflict as refused:
                if refused.state == SessionState.READY.value:  # ready, but never retried
                    raise Conflict(code="earlier_not_retried", state=refused.state, day=day.isoformat()) from None
                raise
        return self._start(now, actor, day, lambda uow, d: True)

    def _start(
        self,
        now: dt.datetime,
        actor: str,
        day: Optional[dt.date],
        allowed: Callable[[SessionsWithEvents, dt.date], bool],
    ) -> WorkSession:
        session = _transition(
            self.store,
            now,
            actor,
            EventKind.SESSION_STARTED,
            lambda uow, d, at: allowed(uow, d) and uow.start_session(d, at),
            day,
        )
        log.info("session for %s started by %s", session.day, actor)
        self.wake_worker()
        return session


class ClosingSessions(SessionsWithEvents, LedgerRoles, Protocol):
    """Closing after the file was delivered also records the day's delivery and its holds."""


class CloseSession:
    """Closes the day (today's unless ``day`` is given: an earlier day closes by the same rules),
    and settles what a running or failed session's worker had done, whether or not a worker is
    alive to do it (delivery_states):

    - ``watching``: the file was delivered: delivery yes, in the close's transaction.
    - ``renaming`` (the worker passed its last check and asked for the rename; delivery unknown,
      its invoices held): the close commits with phase ``settling``, then the temporary file is
      set aside on the outbound server, which no rename can follow, and the verdict recorded
      (delivery.settle). When the server cannot be asked now, the runner asks again at each round.
    - ``uploading``: nothing was delivered, and no worker renames after the close (its step into
      ``renaming`` is conditional on the state). Once the close has committed, a temporary file a
      dead worker left is removed (best effort: the consumer ignores it).

    No FTP while the session's row is locked. A worker finding the session closed leaves the
    outbound server to Close.
    """

    def __init__(self, *, store: Transactions[ClosingSessions], outbound: Optional[OutboundFiles] = None) -> None:
        self.store = store
        self.outbound = outbound

    def __call__(
        self, now: dt.datetime, actor: str = SYSTEM, day: Optional[dt.date] = None, reason: Optional[str] = None
    ) -> WorkSession:
        """Close today's session, or ``day``'s (an earlier day: the same rules); ``reason`` (ops'
        ``session close --day``) goes into the day's event."""
        found: List[WorkSession] = []  # the session as the close found it
        session = _transition(
            self.store,
            now,
            actor,
            EventKind.SESSION_CLOSED,
            lambda uow, d, at: self._close(uow, d, at, found),
            day,
            reason,
        )
        log.info("session for %s closed by %s", session.day, actor)
        if session.delivery is Delivery.UNKNOWN:
            try:
                settle(self.store, self.outbound, session.day, lambda: now)
            except Exception:  # closed all the same: the runner settles it at its next round
                log.exception("session for %s: settling the close failed; the runner tries again", session.day)
                return session
            return session_status(self.store, session.day)
        if found and found[0].phase is SessionPhase.UPLOADING and found[0].export_file and self.outbound is not None:
            try:
                self.outbound.discard(found[0].export_file)
            except TransferError as error:
                log.warning(
                    "session for %s: the temporary file of %s stays (%s)", session.day, found[0].export_file, error
                )
        return session

    def settle_now(self, now: dt.datetime, actor: str, day: dt.date, reason: str) -> WorkSession:
        """Ops' ``session close --day`` on a day already closed whose delivery is unknown: ask the
        outbound server now, as the Close did (the runner asks at each round anyway), and say who
        asked and why in the day's events. The refusal of a closed day when its delivery is known."""
        with self.store.unit_of_work() as uow:
            uow.lock_session(day)
            session = uow.session(day) or WorkSession(day=day, state=SessionState.NONE)
            if session.state is not SessionState.CLOSED or session.delivery is not Delivery.UNKNOWN:
                raise refusal(session, now.date())
            uow.record_event(
                Event(day, EventKind.SESSION_CLOSED, now, actor, {"from": session.state.value, "reason": reason})
            )
        log.info("session for %s: %s asks the outbound server now whether its file was delivered", day, actor)
        settle(self.store, self.outbound, day, lambda: now)
        return session_status(self.store, day)

    @staticmethod
    def _close(uow: ClosingSessions, day: dt.date, now: dt.datetime, found: List[WorkSession]) -> bool:
        before = uow.session(day)
        if not uow.close_session(day, now):
            return False
        # A failed day, too, may have delivered its file, or not know whether it did.
        if before is None or before.state not in (SessionState.RUNNING, SessionState.FAILED) or not before.export_file:
            return True
        found.append(before)
        if before.phase is SessionPhase.WATCHING:
            record_verdict(uow, day, before.delivery, Delivery.YES)
            if before.state is SessionState.RUNNING:  # a failed day's reason stays its detail
                uow.set_closed_detail(day, DELIVERED_BEFORE_CLOSE.format(file=before.export_file))
                log.warning("session for %s closed after %s was delivered", day, before.export_file)
        elif before.phase is SessionPhase.RENAMING and before.delivery is Delivery.UNKNOWN:
            uow.set_closed_phase(day, SessionPhase.SETTLING)
            if before.state is SessionState.RUNNING:
                uow.set_closed_detail(day, SETTLING_AT_CLOSE.format(file=before.export_file))
            else:  # failed: the Close interrupted nothing, and why it failed stays said first
                uow.set_closed_detail(day, closed_after_failing(before.detail, before.export_file))
        return True
