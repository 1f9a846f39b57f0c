"""The store's roles for the day in hindsight: the event table and the cheap reads of the history."""

from __future__ import annotations

import datetime as dt
from typing import List, Optional, Protocol, Sequence, Tuple

from warehouse_core.audit import Event
from warehouse_core.days import DayFile, DaySummary, FileCounts
from warehouse_core.metrics import MetricsSnapshot


class Events(Protocol):
    """The append-only event table: written in the same transaction as the change it reports."""

    def record_event(self, event: Event) -> None: ...

    def events_of_day(self, day: dt.date) -> List[Event]:
        """The day's events in the order they were written."""


class History(Protocol):
    """What the history pages, /metrics and the clean-up read and keep; never a scan of the lines."""

    def record_file_counts(self, file_id: int, counts: FileCounts) -> None:
        """The counts of an imported file, stored at import time."""

    def record_problem_count(self, file_id: int, count: int) -> None:
        """How many problems a rejected file had (its reasons keep the first 100)."""

    def history_days(self, before: Optional[dt.date], limit: int) -> List[dt.date]:
        """Days that had anything (a file, a mail, a session, an event) before ``before``, newest first."""

    def day_summaries(self, days: Sequence[dt.date]) -> List[DaySummary]:
        """Each day's files (without their reasons), session and mail counts, in the order given."""

    def day_files(self, day: dt.date) -> List[DayFile]:
        """The day's files in the order received, with every reason a rejected one had."""

    def metrics_snapshot(self, today: dt.date) -> MetricsSnapshot: ...

    def record_poll(self, now: dt.datetime, ok: bool) -> None:
        """A poll's outcome: its time when it read the inbound server, else one failure more."""

    def record_check(self, dependency: str, now: dt.datetime, ok: bool, detail: str) -> None:
        """The result of a dependency check the scheduler ran."""

    def last_check(self, dependency: str) -> Optional[dt.datetime]:
        """When that dependency was last checked, by any process."""

    def last_success(self, dependency: str) -> Optional[dt.datetime]:
        """When that check last succeeded, by any process (failures after it do not move it)."""

    def archived_files_before(self, day: dt.date) -> List[Tuple[int, dt.date, str]]:
        """(file id, day, archive path) of archived files not yet deleted, of days before ``day`` whose
        session is final or that never had one."""

    def exports_before(self, day: dt.date) -> List[Tuple[dt.date, str]]:
        """(day, export file) of final sessions before ``day`` whose export was not yet deleted."""

    def mark_archive_deleted(self, file_id: int, now: dt.datetime) -> bool:
        """Claim the archived file's deletion; False when another process already did (the row
        stays locked until the end of the transaction, so two clean-ups never both claim it)."""

    def mark_export_deleted(self, day: dt.date, now: dt.datetime) -> bool:
        """Claim the day's export deletion; False when another process already did."""
