"""The store, split by role: a use case names only the roles it uses.

A unit of work is one database transaction seen through its roles (``FilesAndLines``,
``Sessions``, ``Outbox``); ``Transactions[R]`` opens one for a use case that needs role ``R``.
The locks, the export and the schema are roles of the store itself, outside any transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import ContextManager, Iterable, Iterator, List, Mapping, Optional, Protocol, Sequence, Tuple, TypeVar

from warehouse_core.model import (
    Delivery,
    FileStatus,
    InboundFileRecord,
    InvoiceStatus,
    Mail,
    Problem,
    SessionPhase,
    SessionState,
    StoredLines,
    WorkSession,
)
from warehouse_core.parsing import LineBlock
from warehouse_core.ports.history import Events, History

Role = TypeVar("Role", covariant=True)


class FilesAndLines(Protocol):
    """Received files and their stored lines, with each line's invoice status."""

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

    def insert_lines(self, file_id: int, day: dt.date, blocks: Iterable[LineBlock]) -> StoredLines:
        """Store the blocks' lines and their categories, each with its invoice status (``blocks_of``
        makes blocks of InvoiceLines made elsewhere). The invoices are looked up set-based, a
        stretch of lines at a time, never one query per line."""

    def refresh_invoice_statuses(self, day: dt.date) -> int:
        """Look every line of the day up again (set-based); the number of valid lines."""

    def invoices_with_status(self, day: dt.date, status: InvoiceStatus) -> Tuple[str, ...]:
        """The distinct invoice numbers of the day's lines in that status, sorted."""

    def record_exported(self, day: dt.date) -> None:
        """Remember the day's valid invoices as exported and delivered, for later days' statuses:
        every hold of the day is proven delivered (never released again)."""

    def hold_exported(self, day: dt.date) -> Tuple[str, ...]:
        """The ledger: hold the day's valid invoices (rows of ``exported_invoice``, as if exported),
        unless another day holds some of them already: then those, sorted, and nothing is held.
        New holds are pending (not proven delivered); those of the day already delivered stay so.
        Serialised against every other day's hold (PostgreSQL: a lock on the ledger until the
        unit of work ends), so two days never both hold one invoice."""

    def release_exported(self, day: dt.date) -> bool:
        """Drop the day's pending holds: this run's file never reached the consumer. Whether the
        day still holds delivered invoices (an earlier delivery of the day: a redelivery's first)."""

    def drop_file_lines(self, file_id: int, day: dt.date) -> bool:
        """Remove the lines and category links stored from the file (the retention); whether
        there were any. What was recorded of the file, its day and its exported invoices stay."""


class Sessions(Protocol):
    """The operator's session of each day; every transition is conditional and atomic."""

    def session(self, day: dt.date) -> Optional[WorkSession]:
        """The day's session, or None when the day has no data."""

    def open_session(self, day: dt.date) -> None:
        """The day has data: its session is ready (no change if it exists)."""

    def start_session(self, day: dt.date, now: dt.datetime) -> bool:
        """ready -> running, atomically; whether this call started it."""

    def close_session(self, day: dt.date, now: dt.datetime) -> bool:
        """ready, running or failed -> closed; whether this call closed it. A running session's
        detail (its worker's note) goes; a failed one's (why it failed) stays."""

    def set_closed_phase(self, day: dt.date, phase: SessionPhase) -> bool:
        """The phase of a closed session (settling, then settled); whether it was closed."""

    def settling_days(self) -> List[dt.date]:
        """Closed sessions whose delivery is still to be settled with the outbound server."""

    def lock_session(self, day: dt.date) -> None:
        """Hold the day's session row until the unit of work ends: what is read next stays true."""

    def update_session(
        self,
        day: dt.date,
        *,
        phase: Optional[SessionPhase] = None,
        total: Optional[int] = None,
        processed: Optional[int] = None,
        export_file: Optional[str] = None,
        detail: Optional[str] = None,
        log_positions: Optional[Mapping[str, int]] = None,
        clear_detail: bool = False,
    ) -> bool:
        """Record progress of a running session; False when it is no longer running (closed). A
        field given as None stays as it is; ``clear_detail`` empties the detail (a note of the
        worker's, such as a failed try or a wait, that the worker has moved past)."""

    def begin_session_try(self, day: dt.date) -> Optional[int]:
        """A worker takes up the running session: its tries so far, this one included, counted in
        the database (a worker that dies leaves its try counted); None when it is not running."""

    def end_session_try(self, day: dt.date) -> None:
        """The try ended cleanly without finishing (the worker shut down): it does not count."""

    def finish_session(self, day: dt.date, state: SessionState, now: dt.datetime, detail: Optional[str]) -> bool:
        """running -> completed or failed; False when it was no longer running."""

    def set_closed_detail(self, day: dt.date, detail: str) -> bool:
        """Say how a closed session ended (its file was delivered); False when it is not closed."""

    def running_days(self) -> List[dt.date]:
        """Days whose session is running, oldest first."""

    def retry_session(self, day: dt.date, kept_export: Optional[str] = None) -> bool:
        """failed -> ready, forgetting the failed run (ops' audited retry); whether this call did it.
        The day's delivery stays: it is about what the failed run shipped. ``kept_export``: the
        export file's name until the next start (the kept file of a run that was delivered)."""

    def set_delivery(self, day: dt.date, delivery: Delivery) -> bool:
        """Record whether the day's export reached the consumer, whatever the session's state (see
        delivery_states for the transitions allowed); False when the day has no session."""

    def days_needing_attention(self, today: dt.date, since: dt.date) -> List[WorkSession]:
        """Earlier days that still need someone (delivery_states.needs_someone), from ``since``
        (included) to ``today`` (excluded), oldest first. ``ready`` counts only after a retry (a
        ``session-retried`` event of the day)."""

    def unknown_delivery_days(self) -> List[dt.date]:
        """Days whose delivery is ``unknown``, whatever their date and state, oldest first."""


class Outbox(Protocol):
    """Mails written in the same transaction as the change they report, delivered later."""

    def enqueue_mail(self, mail: Mail, once_key: Optional[str] = None, queued_at: Optional[dt.datetime] = None) -> bool:
        """Put a mail in the outbox; with ``once_key``, only if no mail had that key. Whether it was queued.
        ``queued_at`` is the service's clock (the outbox age of /metrics is measured on it); the
        database's own clock when not given."""

    def claim_due_mail(self, now: dt.datetime) -> Optional[Mail]:
        """The oldest unsent mail whose retry time has come, locked against other senders."""

    def mark_mail_sent(self, mail_id: int, now: dt.datetime) -> None: ...

    def mark_mail_failed(self, mail_id: int, error: str, retry_at: dt.datetime) -> None: ...


class UnitOfWork(FilesAndLines, Sessions, Outbox, Events, History, Protocol):
    """One database transaction: committed when the block ends normally, rolled back otherwise."""


class Transactions(Protocol[Role]):
    def unit_of_work(self) -> ContextManager[Role]:
        """A new unit of work; a use case that asks for ``Transactions[Sessions]`` sees only that role.
        Raises DatabaseUnavailable, without waiting long, while the database does not answer."""


class Locks(Protocol):
    def exclusive_poll(self) -> ContextManager[bool]:
        """Hold the one poll lock shared by every process; yields False when another holds it."""

    def poll_lock_held_for(self) -> Optional[dt.timedelta]:
        """How long the poll lock has been held by the poll that holds it (another process's);
        None when nobody holds it or the store cannot tell."""

    def claim_session(self, day: dt.date) -> ContextManager[bool]:
        """Hold the day's worker lock across processes; yields False when another worker has it.
        The lock dies with its process, so a session whose worker died can be claimed again."""

    def still_claimed(self, day: dt.date) -> bool:
        """Whether this worker still holds the day's lock: a database restart drops it, and then
        another worker may claim the session. Asked before the step that cannot be undone."""


class ExportSource(Protocol):
    def export_lines(self, day: dt.date, columns: Sequence[str], skip: int) -> ContextManager[Iterator[bytes]]:
        """The export file's lines (see export_format.export_line), streamed in blocks of whole lines, each
        line ending in a newline: one per valid line of the day joined with the invoice view, in line
        order, after the first ``skip``."""


class Store(Transactions[UnitOfWork], Locks, ExportSource, Protocol):
    """Every role at once: what the composition root builds and hands out."""

    def migrate(self) -> List[str]:
        """Create or upgrade the schema (under a lock, so several processes may call it); versions applied."""

    def ping(self) -> bool:
        """Whether the database answers."""

    def missing_view_columns(self, export_columns: Sequence[str]) -> List[str]:
        """The columns that the invoice view lacks for the import and for these export columns
        (export_format.view_columns_needed); ConfigurationError when there is no such view."""
