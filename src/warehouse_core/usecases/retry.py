"""RetrySession: ops turn a failed day back to ready, audited (SPEC §5 "Retry of a failed day").

Not a button: operators get one Start a day. A retry records who and why in the day's events and
mails ``session-retry``. When the failed run had already renamed its export into place on the
outbound server, the consumer may have read it: the retry is refused unless ``redeliver``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import List, Optional

from warehouse_core.audit import Event, EventKind
from warehouse_core.errors import Conflict
from warehouse_core.model import MailEvent, SessionPhase, SessionState, WorkSession
from warehouse_core.ports import ExportFiles, MailRenderer, OutboundFiles, Transactions, UnitOfWork
from warehouse_core.usecases.delivery import renamed
from warehouse_core.usecases.mails import compose, queue_mail

log = logging.getLogger(__name__)


def delivered_by_failed_run(session: WorkSession, events: List[Event]) -> bool:
    """Whether the failed run's export reached its final name on the outbound server: it was
    watching the consumer's log (the rename comes before), or it said it had uploaded."""
    if session.phase is SessionPhase.WATCHING:
        return True
    uploaded = False
    for event in events:
        if event.kind in (EventKind.SESSION_STARTED, EventKind.SESSION_RETRIED):
            uploaded = False
        elif event.kind is EventKind.SESSION_UPLOADED:
            uploaded = True
    return uploaded


class RetrySession:
    def __init__(
        self, *, store: Transactions[UnitOfWork], exports: ExportFiles, renderer: MailRenderer, outbound: OutboundFiles
    ) -> None:
        self.store = store
        self.exports = exports
        self.renderer = renderer
        self.outbound = outbound

    def __call__(self, day: dt.date, reason: str, actor: str, now: dt.datetime, redeliver: bool = False) -> WorkSession:
        reason = " ".join(reason.split())
        if not reason:
            raise Conflict(code="retry_no_reason", day=day.isoformat())
        with self.store.unit_of_work() as uow:
            failed = self._failed_session(uow, day)
            delivered = delivered_by_failed_run(failed, uow.events_of_day(day))
        if (
            not delivered
            and not redeliver
            and failed.phase in (SessionPhase.UPLOADING, SessionPhase.RENAMING)
            and failed.export_file
        ):
            # The rename may have gone through although the run saw an error (a reply lost, a
            # connection cut after RNTO): the outbound server says (in phase renaming, by the
            # temporary file's absence, whether or not the consumer took the final file away).
            # Unreachable: TransferError, so ops try again later or say --redeliver; never a guess
            # that ships the day twice.
            if failed.phase is SessionPhase.RENAMING:
                delivered = renamed(self.outbound, failed)
            else:
                delivered = self.outbound.size(failed.export_file) is not None
        if delivered and not redeliver:
            raise Conflict(code="retry_delivered", day=day.isoformat(), export_file=failed.export_file)
        if failed.export_file:
            # A later start must write the export anew with the statuses of then, not resume this one.
            self.exports.discard(day, failed.export_file)
        with self.store.unit_of_work() as uow:
            if not uow.retry_session(day):
                raise _not_failed(day, uow.session(day))
            uow.record_event(
                Event(
                    day,
                    EventKind.SESSION_RETRIED,
                    now,
                    actor,
                    {
                        "reason": reason,
                        "previous_detail": failed.detail,
                        "redeliver": delivered,
                        "previous_export_file": failed.export_file,
                    },
                )
            )
            mail = compose(
                self.renderer,
                MailEvent.SESSION_RETRY,
                day,
                actor=actor,
                reason=reason,
                previous_detail=failed.detail,
                failed_at=failed.finished_at,
                redeliver=delivered,
                export_file=failed.export_file,
            )
            queue_mail(uow, mail, now, actor=actor)
            ready = uow.session(day)
        assert ready is not None
        log.warning("session for %s turned back to ready by %s: %s", day, actor, reason)
        return ready

    @staticmethod
    def _failed_session(uow: UnitOfWork, day: dt.date) -> WorkSession:
        session = uow.session(day)
        if session is None or session.state is not SessionState.FAILED:
            raise _not_failed(day, session)
        return session


def _not_failed(day: dt.date, session: Optional[WorkSession]) -> Conflict:
    state = session.state.value if session is not None else SessionState.NONE.value
    return Conflict(code="retry_not_failed", state=state, day=day.isoformat(), current=state)
