from __future__ import annotations

import datetime as dt
from typing import BinaryIO, ContextManager, Protocol


class ExportWriter(Protocol):
    def write(self, lines: bytes) -> None:
        """Append whole lines, newlines included."""

    def sync(self) -> None:
        """Make every line written so far durable."""


class ExportFiles(Protocol):
    """The local export files, one per day."""

    def complete_lines(self, day: dt.date, name: str) -> int:
        """How many whole lines the export file holds (0 when there is none)."""

    def writer(self, day: dt.date, name: str, keep_lines: int) -> ContextManager[ExportWriter]:
        """Append after the first ``keep_lines`` lines, dropping anything after them."""

    def open(self, day: dt.date, name: str) -> BinaryIO: ...

    def discard(self, day: dt.date, name: str) -> bool:
        """Remove the day's export file (a retried day's, the retention's); whether it was there."""

    def keep_aside(self, day: dt.date, name: str, kept: str) -> bool:
        """Rename the day's export file ``name`` to ``kept`` (a retried day's run that reached the
        consumer: what it shipped stays downloadable); whether it was there."""

    def discard_kept(self, day: dt.date, name: str) -> int:
        """Remove the runs of ``name`` that ``keep_aside`` kept (``name.run<N>``, retention's);
        how many were there."""
