"""RetrySession: ops turn a failed day back to ready, audited (SPEC §5 "Retry of a failed day").

Not a button: operators get one Start a day. A retry records who and why in the day's events and
mails ``session-retry``. When the failed run had already renamed its export into place on the
outbound server, the consumer may have read it: the retry is refused unless ``redeliver``.
A day older than the earlier days' window (30 days) is refused too: the page could never start it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Optional

from warehouse_core.audit import Event, EventKind
from warehouse_core.delivery_states import ATTENTION_DAYS, attention_window, record_verdict
from warehouse_core.errors import Conflict
from warehouse_core.model import Delivery, MailEvent, SessionPhase, SessionState, WorkSession
from warehouse_core.ports import ExportFiles, MailRenderer, OutboundFiles, Transactions, UnitOfWork
from warehouse_core.usecases.delivery import settle
from warehouse_core.usecases.mails import compose, queue_mail

log = logging.getLogger(__name__)


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
        if day < attention_window(now.date())[0]:
            # The page starts an earlier day only while it lists it (the last 30 days): a day
            # retried beyond would be ready for ever, its Start refused as "not retried".
            # Its advice depends on the day's delivery: a delivered (or not yet settled) day's
            # invoices are held, so no current day's file can export them.
            with self.store.unit_of_work() as uow:
                found = uow.session(day)
            delivery = found.delivery.value if found is not None and found.delivery is not None else None
            raise Conflict(code="retry_out_of_reach", day=day.isoformat(), days=ATTENTION_DAYS, delivery=delivery)
        failed = self._settled(day, now)
        delivered = failed.delivery is Delivery.YES
        if delivered and not redeliver:
            raise Conflict(code="retry_delivered", day=day.isoformat(), export_file=failed.export_file)
        kept = self._keep_export(failed, delivered)
        with self.store.unit_of_work() as uow:
            if not uow.retry_session(day, kept):
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
                        "kept_export_file": kept,
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

    def _settled(self, day: dt.date, now: dt.datetime) -> WorkSession:
        """The failed session, its delivery settled first: a day turned back to ready must know
        whether its failed run's file reached the consumer (yes is recorded, and the retry refused
        without ``redeliver``; no releases its invoices). Unknown: refused until the outbound server
        answers, with ``redeliver`` too: yes is recorded only on proof (SPEC §5), and a redelivery
        needs that server anyway."""
        with self.store.unit_of_work() as uow:
            failed = self._failed_session(uow, day)
        if failed.delivery is Delivery.UNKNOWN and not settle(self.store, self.outbound, day, lambda: now):
            raise Conflict(code="retry_unknown", day=day.isoformat(), export_file=failed.export_file)
        # Asked before the row is locked (no FTP under a lock): a failed run's phase and file no
        # longer change, and the state is checked again under the lock.
        legacy_in_place = failed.delivery is None and self._legacy_in_place(failed)
        with self.store.unit_of_work() as uow:
            uow.lock_session(day)
            failed = self._failed_session(uow, day)
            if failed.delivery is Delivery.UNKNOWN:  # a redelivery renamed meanwhile? never guessed
                raise Conflict(code="retry_unknown", day=day.isoformat(), export_file=failed.export_file)
            if failed.delivery is None and legacy_in_place:
                record_verdict(uow, day, failed.delivery, Delivery.YES)
                failed = self._failed_session(uow, day)
        return failed

    def _legacy_in_place(self, failed: WorkSession) -> bool:
        """A run from before the ledger (no delivery recorded) that failed while uploading: whether
        its file is in place on the outbound server (TransferError when it cannot be asked)."""
        return (
            failed.phase is SessionPhase.UPLOADING
            and bool(failed.export_file)
            and (self.outbound.size(failed.export_file or "") is not None)
        )

    def _keep_export(self, failed: WorkSession, delivered: bool) -> Optional[str]:
        """A later start writes the export anew with the statuses of then, never resuming this
        one: the local file goes. What reached the consumer stays downloadable under the name of
        its run (``<file>.run<N>``); the session shows it until the next start."""
        if not failed.export_file:
            return None
        if not delivered:
            self.exports.discard(failed.day, failed.export_file)
            return None
        with self.store.unit_of_work() as uow:
            runs = 1 + sum(1 for event in uow.events_of_day(failed.day) if event.kind is EventKind.SESSION_RETRIED)
        kept = "{}.run{}".format(failed.export_file, runs)
        return kept if self.exports.keep_aside(failed.day, failed.export_file, kept) else None

    @staticmethod
    def _failed_session(uow: UnitOfWork, day: dt.date) -> WorkSession:
        session = uow.session(day)
        if session is None or session.state is not SessionState.FAILED:
            raise _not_failed(day, session)
        return session


def _not_failed(day: dt.date, session: Optional[WorkSession]) -> Conflict:
    state = session.state.value if session is not None else SessionState.NONE.value
    return Conflict(code="retry_not_failed", state=state, day=day.isoformat(), current=state)
