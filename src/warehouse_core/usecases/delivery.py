"""Settling a day's delivery with the outbound server (SPEC §5 "The delivery ledger").

A day whose delivery is ``unknown`` and whose worker is gone (closed while renaming, failed in
phase renaming, retried by ops) is settled here: the temporary file is set aside, which no rename
can follow, and the verdict recorded (delivery_states). The runner asks about every such day at
each round, whatever its date; a later day's Start asks first; Close asks once it has committed;
``session retry`` asks before it turns the day back to ready.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from typing import Callable, List, Optional, Protocol

from warehouse_core.audit import Event, EventKind
from warehouse_core.delivery_states import Delivery, SessionPhase, fence_verdict, record_verdict
from warehouse_core.errors import TransferError
from warehouse_core.model import Mail, MailEvent, SessionState, WorkSession
from warehouse_core.ports import (
    Events,
    ExportFiles,
    FilesAndLines,
    MailRenderer,
    OutboundFiles,
    Outbox,
    Sessions,
    Transactions,
)
from warehouse_core.usecases.mails import compose, queue_mail

log = logging.getLogger(__name__)

# The detail of a session a Close found at its rename (its worker running), until it is settled; and
# what it becomes then (reasons.py says each in the operator's language).
SETTLING_AT_CLOSE = (
    "closed by an operator while {file} was being renamed into place on the outbound server;"
    " whether the consumer got it is being checked"
)
DELIVERED_BEFORE_CLOSE = (
    "closed by an operator after {file} was delivered to the outbound server; its invoices are recorded as exported"
)
SET_ASIDE_AT_CLOSE = "closed by an operator before {file} was renamed into place: the consumer never saw it"
REDELIVERY_SET_ASIDE_AT_CLOSE = (
    "closed by an operator before the redelivery of {file} was renamed into place: the consumer has only the file"
    " delivered earlier, whose invoices stay recorded as exported"
)

# A failed day closed while its delivery is unknown: the Close interrupted nothing, so the failure's
# reason stays first in its detail, followed by what the Close left to learn, then what was learnt.
CLOSED_AFTER_FAILING = "closed by an operator after it failed; whether the consumer got {file} is being checked"
FAILED_DELIVERED = (
    "closed by an operator after it failed; {file} had been delivered to the outbound server: its invoices are"
    " recorded as exported"
)
FAILED_SET_ASIDE = (
    "closed by an operator after it failed; {file} was never renamed into place: the consumer never saw it"
)
FAILED_REDELIVERY_SET_ASIDE = (
    "closed by an operator after it failed; the redelivery of {file} was never renamed into place: the consumer has"
    " only the file delivered earlier, whose invoices stay recorded as exported"
)


def closed_after_failing(reason: Optional[str], file: str) -> str:
    """The detail of a failed day closed with its delivery unknown: its reason, then the Close's."""
    note = CLOSED_AFTER_FAILING.format(file=file)
    return "{}; {}".format(reason, note) if reason else note


def _settled_detail(detail: Optional[str], file: str, verdict: Delivery, after: Optional[Delivery]) -> Optional[str]:
    """What a closed day's detail becomes once its delivery is settled; None: it stays."""
    if detail == SETTLING_AT_CLOSE.format(file=file):
        if verdict is Delivery.YES:
            return DELIVERED_BEFORE_CLOSE.format(file=file)
        # Set aside; a redelivery's day keeps its earlier delivery (yes).
        return (REDELIVERY_SET_ASIDE_AT_CLOSE if after is Delivery.YES else SET_ASIDE_AT_CLOSE).format(file=file)
    note = CLOSED_AFTER_FAILING.format(file=file)
    if detail is None or not detail.endswith(note):
        return None
    if verdict is Delivery.YES:
        text = FAILED_DELIVERED
    else:
        text = FAILED_REDELIVERY_SET_ASIDE if after is Delivery.YES else FAILED_SET_ASIDE
    return detail[: -len(note)] + text.format(file=file)


class LedgerRoles(Sessions, FilesAndLines, Events, Outbox, Protocol):
    """A unit of work seen as the roles a delivery touches: the session, its holds, its timeline
    and the mail that says what was learnt."""


def in_place(outbound: OutboundFiles, exports: ExportFiles, session: WorkSession) -> bool:
    """For a worker from before phase renaming, resumed in ``uploading``: True when the final file
    is on the outbound server with the local export's size; raises TransferError when the server
    cannot be asked."""
    name = session.export_file
    assert name is not None
    with exports.open(session.day, name) as local:
        expected = local.seek(0, 2)
    return outbound.size(name) == expected


def settle(
    store: Transactions[LedgerRoles],
    outbound: Optional[OutboundFiles],
    day: dt.date,
    now: Optional[Callable[[], dt.datetime]] = None,
    renderer: Optional[MailRenderer] = None,
) -> bool:
    """Settle the day's delivery if it is unknown and no worker may still rename (not running);
    whether it is settled now. Idempotent, and safe whoever calls it, whenever. Raises nothing
    but what the database raises: a server that cannot answer (or answers oddly) leaves it for the
    next round. With ``now`` (the service's clock), what was learnt goes into the day's timeline
    (``delivery-settled``) in the transaction that records it; with ``renderer`` too, a failed
    day whose file never arrived is mailed again (``session-failed``, saying so): its invoices
    wait for a retry."""
    with store.unit_of_work() as uow:
        found = uow.session(day)
    if found is None or found.delivery is not Delivery.UNKNOWN:
        return True
    if found.state is SessionState.RUNNING or outbound is None or not found.export_file:
        return False  # a running day's own worker asks (delivery_states.rename_verdict)
    try:
        verdict = fence_verdict(outbound, found.export_file)
    except Exception as error:  # unreachable, or a reply the adapter cannot read: asked again next round
        log.warning("session for %s: could not yet settle whether %s was delivered: %s", day, found.export_file, error)
        return False
    mail = _never_delivered(renderer, found) if verdict is Delivery.NO and now is not None else None
    with store.unit_of_work() as uow:
        uow.lock_session(day)
        current = uow.session(day)
        if current is None or current.state is not found.state or current.delivery is not Delivery.UNKNOWN:
            return True
        after = record_verdict(uow, day, current.delivery, verdict)
        if now is not None:
            learnt = {"file": found.export_file, "verdict": verdict.value, "delivery": after.value if after else None}
            uow.record_event(Event(day, EventKind.DELIVERY_SETTLED, now(), detail=learnt))
            if mail is not None and after is Delivery.NO and current.state is SessionState.FAILED:
                queue_mail(uow, mail, now())
        if current.state is SessionState.CLOSED and current.phase is SessionPhase.SETTLING:
            uow.set_closed_phase(day, SessionPhase.RENAMING)
            detail = _settled_detail(current.detail, found.export_file, verdict, after)
            if detail is not None:
                uow.set_closed_detail(day, detail)
    if verdict is Delivery.NO:
        log.info("session for %s: %s was never renamed into place; its invoices are free again", day, found.export_file)
        try:
            outbound.discard(found.export_file)
        except TransferError as error:
            log.warning("session for %s: the set-aside file of %s stays (%s)", day, found.export_file, error)
    else:
        log.warning("session for %s: %s had reached the consumer; its invoices stay exported", day, found.export_file)
    return True


def _never_delivered(renderer: Optional[MailRenderer], failed: WorkSession) -> Optional[Mail]:
    """The mail of a failed day whose file never reached the consumer, composed before the
    transaction; None without a renderer or when even the built-in template fails (logged: the
    verdict is recorded all the same)."""
    if renderer is None or failed.state is not SessionState.FAILED:
        return None
    try:
        return compose(
            renderer,
            MailEvent.SESSION_FAILED,
            failed.day,
            session=replace(failed, delivery=Delivery.NO),
            reason=failed.detail or "",
            waited_for=None,
            never_delivered=True,
        )
    except Exception:
        log.exception("session for %s: the mail that its file never arrived could not be written", failed.day)
        return None


def settle_unknown_days(
    store: Transactions[LedgerRoles],
    outbound: Optional[OutboundFiles],
    before: Optional[dt.date] = None,
    now: Optional[Callable[[], dt.datetime]] = None,
    renderer: Optional[MailRenderer] = None,
) -> List[dt.date]:
    """Settle every day whose delivery is unknown (only those before ``before`` when given), oldest
    first; the days still unknown afterwards. One day's trouble never stops the others."""
    with store.unit_of_work() as uow:
        days = [day for day in uow.unknown_delivery_days() if before is None or day < before]
    left = []
    for day in days:
        try:
            settled = settle(store, outbound, day, now, renderer)
        except Exception:  # the database or a bug: this day waits for the next round, the others go on
            log.exception("session for %s: settling its delivery failed; tried again next round", day)
            settled = False
        if not settled:
            left.append(day)
    return left
