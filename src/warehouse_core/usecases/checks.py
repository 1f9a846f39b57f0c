"""CheckDependencies: the scheduler tries each dependency at most every 5 minutes, across every
process (the last check's time is in the database), and records the outcome for /metrics."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable, Dict, Mapping

from warehouse_core.ports import History, Transactions

log = logging.getLogger(__name__)
CHECK_EVERY = dt.timedelta(minutes=5)
DAILY_CLEANUP = "cleanup"
# After a failed clean-up: not at every upkeep tick (each minute), a failure that stays would fill
# the log with its traceback; an hour later, so that a passing one is not left for the next day.
CLEANUP_RETRY_AFTER = dt.timedelta(hours=1)


class CheckDependencies:
    def __init__(self, *, store: Transactions[History], probes: Mapping[str, Callable[[], None]]) -> None:
        self.store = store
        self.probes = dict(probes)

    def due(self, now: dt.datetime) -> bool:
        with self.store.unit_of_work() as uow:
            times = [uow.last_check(name) for name in self.probes]
        return any(last is None or now - last >= CHECK_EVERY for last in times)

    def __call__(self, now: dt.datetime) -> Dict[str, bool]:
        """Run every probe if the last round is 5 minutes old; each outcome by name (empty: not due)."""
        if not self.due(now):
            return {}
        outcomes: Dict[str, bool] = {}
        details: Dict[str, str] = {}
        for name, probe in self.probes.items():
            try:
                probe()
                outcomes[name], details[name] = True, "ok"
            except Exception as error:  # any failure means "down", with its reason for the log
                outcomes[name], details[name] = False, " ".join(str(error).split()) or type(error).__name__
                log.warning("dependency check: %s is down: %s", name, details[name])
        with self.store.unit_of_work() as uow:
            for name, ok in outcomes.items():
                uow.record_check(name, now, ok, details[name])
        return outcomes


def cleanup_due(store: Transactions[History], now: dt.datetime) -> bool:
    """The retention runs once a day, whichever process gets there first after midnight. A run
    that failed is recorded but is not the day's run: it is tried again an hour later."""
    with store.unit_of_work() as uow:
        succeeded = uow.last_success(DAILY_CLEANUP)
        tried = uow.last_check(DAILY_CLEANUP)
    if succeeded is not None and succeeded.date() >= now.date():
        return False
    # In UTC: aware datetimes of one time zone subtract as wall-clock times (wrong by an hour
    # across a daylight-saving change).
    return tried is None or tried.date() < now.date() or _utc(now) - _utc(tried) >= CLEANUP_RETRY_AFTER


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.timezone.utc)


def record_cleanup(store: Transactions[History], now: dt.datetime, ok: bool, detail: str) -> None:
    with store.unit_of_work() as uow:
        uow.record_check(DAILY_CLEANUP, now, ok, detail)
