"""Every state of a day's delivery, in one place (SPEC §5 "The delivery ledger"; STYLE "States in one place").

A started session goes through phases (``exporting`` → ``uploading`` → ``renaming`` → ``watching``;
``settling`` while a Close waits for the outbound server). Whether its file reached the consumer is
the day's **delivery**, written in the same transaction as the phase ``renaming``:

- ``None``: no rename was ever asked for; nothing of the day can have reached the consumer.
- ``unknown``: a rename was asked for and nobody knows yet whether it went through. The day's
  exported invoices are **held** (rows of the ledger, ``exported_invoice``), exactly as if exported,
  as *pending*: held for this rename, not yet proven delivered.
- ``yes``: proof of a rename (the temporary file is gone, or the consumer's log names the file):
  the day's holds are proven **delivered**, and a delivered hold is never released.
- ``no``: proof that the consumer never saw the file: the fence set the temporary file aside
  (RNFR/RNTO to a name the consumer ignores), which no late rename can follow. Never concluded
  from "temporary file there, final one absent" alone: a rename the server received may still be
  carried out (a stalled server; a worker whose claim died mid-rename). The pending holds are
  released, the invoices valid again later; a next try uploads afresh.

A redelivery (``session retry --redeliver`` of a day whose delivery is ``yes``) is a run of its
own: at its rename the delivery goes back to ``unknown`` (whether *this* file arrives), the
invoices only it exports are held as pending, and it is settled like any run (its own worker, a
Close's fence, the runner). Proof that it never arrived releases only its pending holds: the
delivery is ``yes`` again, for the first run's delivered invoices, and never ``no``.

The tables below are the only transitions there are; the worker, Close, retry and the settle job
move a day through them, and the model test checks that every change it sees is one of them.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Dict, FrozenSet, Optional, Protocol, Tuple

if TYPE_CHECKING:  # the ports import the model, which imports this module
    from warehouse_core.ports import FilesAndLines, OutboundFiles, Sessions

    class Ledger(FilesAndLines, Sessions, Protocol):
        """A unit of work seen as the two roles a delivery touches: the session and its holds."""


class SessionPhase(str, enum.Enum):
    """Where a running session is, so that a restarted worker resumes at the right step."""

    EXPORTING = "exporting"
    UPLOADING = "uploading"
    # Committed with the check before the rename, and with delivery ``unknown``: from here on the
    # file may be in place on the outbound server, so whoever finds the session here asks the server.
    RENAMING = "renaming"
    WATCHING = "watching"
    # A session closed in phase renaming, until the outbound server has said whether the rename went
    # through (Close asks once it has committed; the runner asks again until the server answers).
    SETTLING = "settling"


class Delivery(str, enum.Enum):
    """Whether the day's export reached the consumer."""

    NO = "no"
    YES = "yes"
    UNKNOWN = "unknown"


# The phase a session may go to from each phase (None: just started, or retried).
PHASE_TRANSITIONS: Dict[Optional[SessionPhase], FrozenSet[SessionPhase]] = {
    None: frozenset({SessionPhase.EXPORTING}),
    SessionPhase.EXPORTING: frozenset({SessionPhase.UPLOADING}),
    # A worker from before phase renaming, resumed with the final file in place, goes to watching.
    SessionPhase.UPLOADING: frozenset({SessionPhase.RENAMING, SessionPhase.WATCHING}),
    # Back to uploading when the fence set the temporary file aside (the rename did not happen); to
    # settling when a Close finds it here; to watching once the rename went through.
    SessionPhase.RENAMING: frozenset({SessionPhase.UPLOADING, SessionPhase.WATCHING, SessionPhase.SETTLING}),
    SessionPhase.WATCHING: frozenset(),
    # Settled: the closed session keeps phase renaming, its detail says how it ended.
    SessionPhase.SETTLING: frozenset({SessionPhase.RENAMING}),
}

# The delivery a day may go to from each delivery.
DELIVERY_TRANSITIONS: Dict[Optional[Delivery], FrozenSet[Delivery]] = {
    # The phase renaming is committed; or a worker from before that phase finds its file in place.
    None: frozenset({Delivery.UNKNOWN, Delivery.YES}),
    Delivery.UNKNOWN: frozenset({Delivery.YES, Delivery.NO}),  # proof, one way or the other
    Delivery.NO: frozenset({Delivery.UNKNOWN}),  # a retried day's new run asks for its rename
    # A redelivery asks for its rename; never ``no``: what reached the consumer is never released.
    Delivery.YES: frozenset({Delivery.UNKNOWN}),
}

# Deliveries whose day holds its exported invoices: no other day's export may contain them.
HOLDING: FrozenSet[Optional[Delivery]] = frozenset({Delivery.YES, Delivery.UNKNOWN})


def allowed(before: Optional[Delivery], after: Optional[Delivery]) -> bool:
    """Whether a day's delivery may change from ``before`` to ``after`` (staying put is allowed)."""
    return before == after or (after is not None and after in DELIVERY_TRANSITIONS[before])


def phase_allowed(before: Optional[SessionPhase], after: Optional[SessionPhase]) -> bool:
    """Whether a session's phase may change from ``before`` to ``after`` (staying put is allowed)."""
    return before == after or (after is not None and after in PHASE_TRANSITIONS[before])


# --- "Earlier days that need someone" (SPEC §5 "Earlier days are never out of reach") --------------

ATTENTION_DAYS = 30  # how far back the group reaches, in days before today

# The states (by value, as the adapters' queries use them) of the group: ``ready`` only after a
# retry; ``running`` and ``failed`` always; ``closed`` only with delivery ``unknown`` (as is a
# failed one, which is in the group anyway).
NEEDING_ATTENTION_STATES: Tuple[str, ...] = ("ready", "running", "failed", "closed")


def attention_window(today: dt.date) -> Tuple[dt.date, dt.date]:
    """The days the group reaches: from ``since`` (included) to ``today`` (excluded); a retried day
    in ``ready`` is in it whatever its date (ops asked for it; retry refuses a day before
    ``since``, so it was inside when retried), until it is started or closed."""
    return today - dt.timedelta(days=ATTENTION_DAYS), today


def needs_someone(state: str, delivery: Optional[Delivery], retried: bool) -> bool:
    """Whether an earlier day in this state and delivery still needs someone (its window aside):
    ``ready`` after a retry, ``running``, ``failed``, or ``closed`` with delivery ``unknown``."""
    if state == "ready":
        return retried
    if state in ("running", "failed"):
        return True
    return state == "closed" and delivery is Delivery.UNKNOWN


# --- "Was it renamed?": the one answer, asked by the worker, Close, retry and the settle job -------


def rename_verdict(outbound: OutboundFiles, name: str) -> Delivery:
    """Asked while a rename may still be carried out (the session is running and found in phase
    renaming: the server may still hold a queued RNTO that timed out, or a worker whose claim died
    may still be renaming): the temporary file gone says the rename went through (only the rename
    moves it once it was stored and checked, even if the consumer has since taken the final file
    away). Otherwise the fence sets the temporary file aside first, so that no late rename can
    follow, and only then: set aside says the rename did not go through, whether or not a final
    file of that name is there (a redelivery's rename refused over the first delivery's file: the
    temporary file would be gone had it gone through), and the next try uploads afresh; nothing
    left to set aside says it went through meanwhile. Raises TransferError when the server cannot
    be asked."""
    if not outbound.temporary_present(name):
        return Delivery.YES
    return fence_verdict(outbound, name)


def fence_verdict(outbound: OutboundFiles, name: str) -> Delivery:
    """Asked when nobody may rename any more (the day is closed or failed): the temporary file is
    set aside, which no rename can follow. Set aside: the consumer never saw the file; gone: the
    rename went through. Raises TransferError when the server cannot say."""
    return Delivery.NO if outbound.fence(name) else Delivery.YES


# --- The transitions, each applied in the caller's unit of work -------------------------------------


def begin_renaming(uow: Ledger, day: dt.date, current: Optional[Delivery]) -> Tuple[str, ...]:
    """In the transaction that commits phase renaming, before the rename is sent: the day's
    exported invoices are held (pending; those an earlier delivery of the day shipped stay
    delivered) and its delivery becomes unknown, a redelivery's too. When another day holds some of
    them already (its rename came after this day's export was written), those invoices, and nothing
    changes: the file must not be renamed into place."""
    taken = uow.hold_exported(day)
    if not taken and current is not Delivery.UNKNOWN:
        assert allowed(current, Delivery.UNKNOWN), current
        uow.set_delivery(day, Delivery.UNKNOWN)
    return taken


def record_verdict(uow: Ledger, day: dt.date, current: Optional[Delivery], verdict: Delivery) -> Optional[Delivery]:
    """Record what the outbound server proved; the day's delivery after it. ``yes`` holds the
    invoices for good (delivered); ``no`` releases the pending holds (valid again for later days):
    the delivery is then ``no``, or ``yes`` when an earlier delivery of the day still holds what it
    shipped (a redelivery that did not arrive takes nothing of it back); ``unknown`` changes nothing."""
    if verdict is Delivery.UNKNOWN:
        return current
    if verdict is Delivery.YES:
        uow.record_exported(day)
        after = Delivery.YES
    else:
        delivered_before = uow.release_exported(day)
        after = Delivery.YES if delivered_before or current is Delivery.YES else Delivery.NO
    if after is not current:
        assert allowed(current, after), (current, after)
        uow.set_delivery(day, after)
    return after
