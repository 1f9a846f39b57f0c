"""Earlier days are never out of reach (SPEC §5, §7): what the page, the API and /metrics say
about the days before today that still need someone, read with today's session in one unit of work.

Which days those are is the ledger's rule (delivery_states.needs_someone, attention_window): the
store's ``days_needing_attention`` query applies it; this module only asks and counts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from typing import List, NamedTuple, Protocol

from warehouse_core.delivery_states import attention_window
from warehouse_core.metrics import MetricsSnapshot
from warehouse_core.model import SessionState, WorkSession
from warehouse_core.ports import History, Sessions, Transactions


class Status(NamedTuple):
    """Today's session and the earlier days that still need someone, oldest first."""

    today: WorkSession
    earlier: List[WorkSession]


def earlier_days(uow: Sessions, today: dt.date) -> List[WorkSession]:
    since, until = attention_window(today)
    return uow.days_needing_attention(until, since)


def status(store: Transactions[Sessions], today: dt.date) -> Status:
    """One unit of work: the status object's ``state`` and ``earlier`` agree with each other."""
    with store.unit_of_work() as uow:
        session = uow.session(today) or WorkSession(day=today, state=SessionState.NONE)
        return Status(session, earlier_days(uow, today))


class MetricsRoles(Sessions, History, Protocol):
    pass


def metrics_snapshot(store: Transactions[MetricsRoles], today: dt.date) -> MetricsSnapshot:
    """The /metrics values, with the earlier days counted by state and the days whose delivery is
    unknown (any date): read in one unit of work, so every process reports the same."""
    with store.unit_of_work() as uow:
        snapshot = uow.metrics_snapshot(today)
        by_state = Counter(session.state.value for session in earlier_days(uow, today))
        unknown = len(uow.unknown_delivery_days())
    return dataclasses.replace(snapshot, days_needing_attention=dict(by_state), delivery_unknown_days=unknown)
