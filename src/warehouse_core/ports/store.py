from __future__ import annotations

import datetime as dt
from typing import ContextManager, Iterable, List, Optional, Protocol, Tuple

from warehouse_core.model import FileStatus, InboundFileRecord, InvoiceLine, Mail, Problem, StoredLines


class UnitOfWork(Protocol):
    """One database transaction: committed when the block ends normally, rolled back otherwise."""

    def find_file(self, name: str, sha256: str) -> Optional[InboundFileRecord]:
        """The file already recorded under this name and content, if any."""

    def day_has_data(self, day: dt.date) -> bool:
        """Whether a file of that day was imported."""

    def record_file(self, record: InboundFileRecord) -> int:
        """Store the file's record; its id."""

    def set_file_outcome(self, file_id: int, status: FileStatus, reasons: Tuple[Problem, ...]) -> None:
        """Change a recorded file's status, with the reasons it was rejected."""

    def savepoint(self) -> ContextManager[None]:
        """A nested block whose writes are undone if it raises."""

    def insert_lines(self, file_id: int, day: dt.date, lines: Iterable[InvoiceLine]) -> StoredLines:
        """Store the lines and their categories, each with its invoice status looked up in one set."""

    def enqueue_mail(self, mail: Mail, once_key: Optional[str] = None) -> bool:
        """Put a mail in the outbox; with ``once_key``, only if no mail had that key. Whether it was queued."""

    def claim_due_mail(self, now: dt.datetime) -> Optional[Mail]:
        """The oldest unsent mail whose retry time has come, locked against other senders."""

    def mark_mail_sent(self, mail_id: int, now: dt.datetime) -> None:
        ...

    def mark_mail_failed(self, mail_id: int, error: str, retry_at: dt.datetime) -> None:
        ...


class Store(Protocol):
    def migrate(self) -> List[str]:
        """Create or upgrade the schema (under a lock, so several processes may call it); versions applied."""

    def unit_of_work(self) -> ContextManager[UnitOfWork]:
        ...

    def exclusive_poll(self) -> ContextManager[bool]:
        """Hold the one poll lock shared by every process; yields False when another holds it."""

    def ping(self) -> bool:
        """Whether the database answers."""
