"""Every state of a day's delivery, in one place (SPEC §5 "The delivery ledger"; STYLE "States in one place").

A started session goes through phases (``exporting`` → ``uploading`` → ``renaming`` → ``watching``;
``settling`` while a Close waits for the outbound server). Whether its file reached the consumer is
the day's **delivery**, written in the same transaction as the phase ``renaming``:

- ``None``: no rename was ever asked for; nothing of the day can have reached the consumer.
- ``unknown``: a rename was asked for and nobody knows yet whether it went through. The day's
  exported invoices are **held** (rows of the ledger, ``exported_invoice``), exactly as if exported.
- ``yes``: proof of the rename (the temporary file is gone, or the consumer's log names the file).
  Final for the day: a redelivery after it never releases what the first delivery shipped.
- ``no``: proof that the consumer never saw the file (the fence set it aside, or the temporary
  file is there and the final one is not): the holds are released, the invoices valid again later.

The tables below are the only transitions there are; the worker, Close, retry and the settle job
move a day through them, and the model test checks that every change it sees is one of them.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Dict, FrozenSet, Optional, Tuple


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
    # Back to uploading when the temporary file is still there (the rename did not happen); to
    # settling when a Close finds it here; to watching once the rename went through.
    SessionPhase.RENAMING: frozenset({SessionPhase.UPLOADING, SessionPhase.WATCHING, SessionPhase.SETTLING}),
    SessionPhase.WATCHING: frozenset(),
    # Settled: the closed session keeps phase renaming, its detail says how it ended.
    SessionPhase.SETTLING: frozenset({SessionPhase.RENAMING}),
}

# The delivery a day may go to from each delivery.
DELIVERY_TRANSITIONS: Dict[Optional[Delivery], FrozenSet[Delivery]] = {
    None: frozenset({Delivery.UNKNOWN}),  # the phase renaming is committed
    Delivery.UNKNOWN: frozenset({Delivery.YES, Delivery.NO}),  # proof, one way or the other
    Delivery.NO: frozenset({Delivery.UNKNOWN}),  # a retried day's new run asks for its rename
    Delivery.YES: frozenset(),  # final: a redelivery never releases what reached the consumer
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
    """The days the group reaches: from ``since`` (included) to ``today`` (excluded)."""
    return today - dt.timedelta(days=ATTENTION_DAYS), today


def needs_someone(state: str, delivery: Optional[Delivery], retried: bool) -> bool:
    """Whether an earlier day in this state and delivery still needs someone (its window aside):
    ``ready`` after a retry, ``running``, ``failed``, or ``closed`` with delivery ``unknown``."""
    if state == "ready":
        return retried
    if state in ("running", "failed"):
        return True
    return state == "closed" and delivery is Delivery.UNKNOWN
