"""In-memory fakes of every port: small honest classes with state to assert on.

The contract suites in tests/contract run the same tests against these and the real adapters.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from warehouse_core.audit import Event, EventKind
from warehouse_core.days import DayFile, DaySummary, FileCounts
from warehouse_core.delivery_states import Delivery, needs_someone
from warehouse_core.errors import Conflict, DatabaseUnavailable, MailDeliveryError, TransferError
from warehouse_core.export_format import export_line, view_columns_needed
from warehouse_core.metrics import DEPENDENCIES, MetricsSnapshot
from warehouse_core.model import (
    FileStatus,
    InboundFileRecord,
    InvoiceLine,
    InvoiceStatus,
    Mail,
    MailEvent,
    Problem,
    RemoteFile,
    SessionPhase,
    SessionState,
    StoredLines,
    WorkSession,
)
from warehouse_core.parsing import LineBlock


class FakeClock:
    """Wall-clock time in a zone and a monotonic reading; both move together as time passes."""

    def __init__(self, now: dt.datetime) -> None:
        self.current = now
        self.elapsed = 0.0

    def now(self) -> dt.datetime:
        return self.current

    def monotonic(self) -> float:
        return self.elapsed

    def set(self, now: dt.datetime) -> None:
        """Jump to ``now``; the monotonic reading moves by the time passed (never backwards)."""
        self.elapsed += max(0.0, (_instant(now) - _instant(self.current)).total_seconds())
        self.current = now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: elapsed time, so the wall clock crosses a daylight-saving change
        as a real one does (an aware datetime plus a timedelta is wall-clock arithmetic)."""
        self.elapsed += seconds
        if self.current.tzinfo is None:
            self.current += dt.timedelta(seconds=seconds)
        else:
            self.current = (_instant(self.current) + dt.timedelta(seconds=seconds)).astimezone(self.current.tzinfo)

    def wait(self, seconds: float) -> bool:
        """The worker's wait: time passes at once; never asks the worker to stop."""
        self.advance(seconds)
        return False


class RunningClock:
    """A clock that starts at a chosen moment and then runs with real time (for real servers)."""

    def __init__(self, start: dt.datetime) -> None:
        self.run_from(start)

    def run_from(self, start: dt.datetime) -> None:
        """Jump to ``start`` (another day of a week, say) and run on from there."""
        self.start = start
        self.began = time.monotonic()

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=time.monotonic() - self.began)

    def monotonic(self) -> float:
        return time.monotonic()


def _instant(moment: dt.datetime) -> dt.datetime:
    """Compared as PostgreSQL compares timestamptz: two aware times in one zone compare by wall
    clock in Python, which is wrong across a daylight-saving change."""
    return moment.astimezone(dt.timezone.utc) if moment.tzinfo is not None else moment


# --- store ---------------------------------------------------------------------------------


@dataclass
class OutboxEntry:
    mail: Mail
    once_key: Optional[str]
    attempts: int = 0
    next_attempt_at: Optional[dt.datetime] = None
    sent_at: Optional[dt.datetime] = None
    last_error: Optional[str] = None
    queued_at: Optional[dt.datetime] = None


@dataclass
class StoredLine:
    id: int
    file_id: int
    day: dt.date
    line: InvoiceLine
    invoice_status: InvoiceStatus


@dataclass
class FakeData:
    files: List[InboundFileRecord] = field(default_factory=list)
    lines: List[StoredLine] = field(default_factory=list)
    categories: Dict[str, int] = field(default_factory=dict)
    outbox: List[OutboxEntry] = field(default_factory=list)
    exported: Set[Tuple[str, dt.date]] = field(default_factory=set)
    # The holds not yet proven delivered (a subset of ``exported``): released when the rename never happened.
    pending: Set[Tuple[str, dt.date]] = field(default_factory=set)
    sessions: Dict[dt.date, WorkSession] = field(default_factory=dict)
    events: List[Event] = field(default_factory=list)
    file_counts: Dict[int, FileCounts] = field(default_factory=dict)
    problem_counts: Dict[int, int] = field(default_factory=dict)
    # name -> (ok, checked_at, last_success_at, failures)
    checks: Dict[str, Tuple[bool, dt.datetime, Optional[dt.datetime], int]] = field(default_factory=dict)
    archive_deleted: Set[int] = field(default_factory=set)
    export_deleted: Set[dt.date] = field(default_factory=set)


class _FakeTransaction:
    def __init__(self, store: "FakeStore") -> None:
        self.store = store
        self.data = store.data
        self.claims: Set[int] = set()  # mails this transaction holds, as FOR UPDATE would


class FakeFilesAndLines(_FakeTransaction):
    def find_file(self, name: str, sha256: str) -> Optional[InboundFileRecord]:
        for record in self.data.files:
            if record.name == name and record.sha256 == sha256:
                return record
        return None

    def day_has_data(self, day: dt.date) -> bool:
        return any(r.day == day and r.status is FileStatus.IMPORTED for r in self.data.files)

    def record_file(self, record: InboundFileRecord) -> int:
        crash, self.store.crash_on_record_file = self.store.crash_on_record_file, None
        if crash is not None:
            raise crash
        if record.status is FileStatus.IMPORTED and self.day_has_data(record.day):
            raise Conflict(code="day_has_data", day=record.day.isoformat())
        file_id = len(self.data.files) + 1
        self.data.files.append(replace(record, id=file_id))
        return file_id

    def set_file_outcome(self, file_id: int, status: FileStatus, reasons: Tuple[Problem, ...]) -> None:
        index = file_id - 1
        self.data.files[index] = replace(self.data.files[index], status=status, reasons=tuple(reasons))

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        saved = copy.deepcopy(self.data)
        try:
            yield
        except BaseException:
            self._restore(saved)
            raise

    def _restore(self, saved: FakeData) -> None:
        self.data.__dict__.update(saved.__dict__)

    def insert_lines(self, file_id: int, day: dt.date, blocks: Iterable[LineBlock]) -> StoredLines:
        stored = 0
        for line in chain.from_iterable(block.lines() for block in blocks):
            for name in line.categories:
                self.data.categories.setdefault(name, len(self.data.categories) + 1)
            self.data.lines.append(
                StoredLine(
                    id=len(self.data.lines) + 1,
                    file_id=file_id,
                    day=day,
                    line=line,
                    invoice_status=self.store.invoice_status(line.invoice_number, day),
                )
            )
            stored += 1
        statuses = [s.invoice_status for s in self.data.lines if s.file_id == file_id]
        return StoredLines(
            stored=stored,
            not_found=self.invoices_with_status(day, InvoiceStatus.NOT_FOUND),
            already_exported=self.invoices_with_status(day, InvoiceStatus.ALREADY_EXPORTED),
            not_found_lines=statuses.count(InvoiceStatus.NOT_FOUND),
            already_exported_lines=statuses.count(InvoiceStatus.ALREADY_EXPORTED),
        )

    def refresh_invoice_statuses(self, day: dt.date) -> int:
        for stored in self.data.lines:
            if stored.day == day:
                stored.invoice_status = self.store.invoice_status(stored.line.invoice_number, day)
        return sum(1 for s in self.data.lines if s.day == day and s.invoice_status is InvoiceStatus.VALID)

    def invoices_with_status(self, day: dt.date, status: InvoiceStatus) -> Tuple[str, ...]:
        return tuple(
            sorted({s.line.invoice_number for s in self.data.lines if s.day == day and s.invoice_status is status})
        )

    def _valid_invoices(self, day: dt.date) -> Set[str]:
        return {
            s.line.invoice_number for s in self.data.lines if s.day == day and s.invoice_status is InvoiceStatus.VALID
        }

    def record_exported(self, day: dt.date) -> None:
        self.data.exported |= {(number, day) for number in self._valid_invoices(day)}
        self.data.pending = {(number, holder) for number, holder in self.data.pending if holder != day}

    def hold_exported(self, day: dt.date) -> Tuple[str, ...]:
        mine = self._valid_invoices(day)
        taken = tuple(sorted({number for number, holder in self.data.exported if holder != day and number in mine}))
        if not taken:
            new = {(number, day) for number in mine} - self.data.exported
            self.data.exported |= new
            self.data.pending |= new
        return taken

    def release_exported(self, day: dt.date) -> bool:
        self.data.exported -= {(number, holder) for number, holder in self.data.pending if holder == day}
        self.data.pending = {(number, holder) for number, holder in self.data.pending if holder != day}
        return any(holder == day for _, holder in self.data.exported)

    def drop_file_lines(self, file_id: int, day: dt.date) -> bool:
        kept = [s for s in self.data.lines if s.file_id != file_id]
        dropped = len(kept) != len(self.data.lines)
        self.data.lines[:] = kept
        return dropped


class FakeSessions(_FakeTransaction):
    def session(self, day: dt.date) -> Optional[WorkSession]:
        return self.data.sessions.get(day)

    def open_session(self, day: dt.date) -> None:
        self.data.sessions.setdefault(day, WorkSession(day=day, state=SessionState.READY))

    def _transition(self, day: dt.date, allowed: Tuple[SessionState, ...], **changes: Any) -> bool:
        session = self.data.sessions.get(day)
        if session is None or session.state not in allowed:
            return False
        self.data.sessions[day] = replace(session, **changes)
        return True

    def start_session(self, day: dt.date, now: dt.datetime) -> bool:
        return self._transition(
            day,
            (SessionState.READY,),
            state=SessionState.RUNNING,
            phase=SessionPhase.EXPORTING,
            started_at=now,
            total=0,
            processed=0,
            export_file=None,
            detail=None,
            tries=0,
        )

    def set_closed_phase(self, day: dt.date, phase: SessionPhase) -> bool:
        return self._transition(day, (SessionState.CLOSED,), phase=phase)

    def settling_days(self) -> List[dt.date]:
        return sorted(
            day
            for day, s in self.data.sessions.items()
            if s.state is SessionState.CLOSED and s.phase is SessionPhase.SETTLING
        )

    def lock_session(self, day: dt.date) -> None:
        """Units of work run one at a time here: the row is held already."""

    def close_session(self, day: dt.date, now: dt.datetime) -> bool:
        allowed = (SessionState.READY, SessionState.RUNNING, SessionState.FAILED)
        session = self.data.sessions.get(day)
        # A running session's note ends with the run; a failed session's reason stays.
        ended: Dict[str, Any] = (
            {"detail": None} if session is not None and session.state is SessionState.RUNNING else {}
        )
        return self._transition(day, allowed, state=SessionState.CLOSED, finished_at=now, **ended)

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
        assert not (clear_detail and detail is not None), "a detail is either given or cleared"
        changes = {
            "phase": phase,
            "total": total,
            "processed": processed,
            "export_file": export_file,
            "detail": detail,
            "log_positions": dict(log_positions) if log_positions is not None else None,
        }
        given: Dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
        if clear_detail:
            given["detail"] = None
        return self._transition(day, (SessionState.RUNNING,), **given)

    def begin_session_try(self, day: dt.date) -> Optional[int]:
        session = self.data.sessions.get(day)
        if session is None or session.state is not SessionState.RUNNING:
            return None
        self.data.sessions[day] = replace(session, tries=session.tries + 1)
        return session.tries + 1

    def end_session_try(self, day: dt.date) -> None:
        session = self.data.sessions.get(day)
        if session is not None and session.state is SessionState.RUNNING:
            self.data.sessions[day] = replace(session, tries=max(session.tries - 1, 0))

    def finish_session(self, day: dt.date, state: SessionState, now: dt.datetime, detail: Optional[str]) -> bool:
        return self._transition(day, (SessionState.RUNNING,), state=state, finished_at=now, detail=detail)

    def set_closed_detail(self, day: dt.date, detail: str) -> bool:
        return self._transition(day, (SessionState.CLOSED,), detail=detail)

    def running_days(self) -> List[dt.date]:
        return sorted(day for day, s in self.data.sessions.items() if s.state is SessionState.RUNNING)

    def set_delivery(self, day: dt.date, delivery: Delivery) -> bool:
        session = self.data.sessions.get(day)
        if session is None:
            return False
        self.data.sessions[day] = replace(session, delivery=delivery)
        return True

    def days_needing_attention(self, today: dt.date, since: dt.date) -> List[WorkSession]:
        retried = {e.day for e in self.data.events if e.kind is EventKind.SESSION_RETRIED}
        return [
            s
            for day, s in sorted(self.data.sessions.items())
            if day < today
            and needs_someone(s.state.value, s.delivery, day in retried)
            and (since <= day or s.state is SessionState.READY)  # a retried day, whatever its date
        ]

    def unknown_delivery_days(self) -> List[dt.date]:
        return sorted(day for day, s in self.data.sessions.items() if s.delivery is Delivery.UNKNOWN)

    def retry_session(self, day: dt.date, kept_export: Optional[str] = None) -> bool:
        retried = self._transition(
            day,
            (SessionState.FAILED,),
            state=SessionState.READY,
            phase=None,
            total=0,
            processed=0,
            started_at=None,
            finished_at=None,
            export_file=kept_export,
            detail=None,
            log_positions=None,
        )
        if retried:
            self.data.export_deleted.discard(day)  # the next run's export is a new file
        return retried


class FakeOutbox(_FakeTransaction):
    def enqueue_mail(self, mail: Mail, once_key: Optional[str] = None, queued_at: Optional[dt.datetime] = None) -> bool:
        if once_key is not None and any(entry.once_key == once_key for entry in self.data.outbox):
            return False
        mail = replace(mail, id=len(self.data.outbox) + 1)
        self.data.outbox.append(OutboxEntry(mail=mail, once_key=once_key, queued_at=queued_at))
        return True

    def claim_due_mail(self, now: dt.datetime) -> Optional[Mail]:
        for entry in self.data.outbox:
            due = entry.next_attempt_at is None or _instant(entry.next_attempt_at) <= _instant(now)
            if entry.sent_at is None and due and entry.mail.id not in self.store.claimed:
                self.store.claimed.add(entry.mail.id)
                self.claims.add(entry.mail.id)
                return replace(entry.mail, attempts=entry.attempts)
        return None

    def _entry(self, mail_id: int) -> OutboxEntry:
        return self.data.outbox[mail_id - 1]

    def mark_mail_sent(self, mail_id: int, now: dt.datetime) -> None:
        entry = self._entry(mail_id)
        entry.sent_at, entry.attempts, entry.last_error = now, entry.attempts + 1, None

    def mark_mail_failed(self, mail_id: int, error: str, retry_at: dt.datetime) -> None:
        entry = self._entry(mail_id)
        entry.attempts, entry.last_error, entry.next_attempt_at = entry.attempts + 1, error, retry_at


FINAL = (SessionState.COMPLETED, SessionState.FAILED, SessionState.CLOSED)


class FakeEvents(_FakeTransaction):
    def record_event(self, event: Event) -> None:
        self.data.events.append(replace(event, id=len(self.data.events) + 1, detail=copy.deepcopy(event.detail)))

    def events_of_day(self, day: dt.date) -> List[Event]:
        return [event for event in self.data.events if event.day == day]


class FakeHistory(_FakeTransaction):
    def record_file_counts(self, file_id: int, counts: FileCounts) -> None:
        self.data.file_counts[file_id] = counts

    def record_problem_count(self, file_id: int, count: int) -> None:
        self.data.problem_counts[file_id] = count

    def history_days(self, before: Optional[dt.date], limit: int) -> List[dt.date]:
        days = {r.day for r in self.data.files} | set(self.data.sessions) | {e.mail.day for e in self.data.outbox}
        days |= {event.day for event in self.data.events}
        return sorted((d for d in days if before is None or d < before), reverse=True)[:limit]

    def _day_file(self, record: InboundFileRecord, with_reasons: bool) -> DayFile:
        assert record.id is not None and record.received_at is not None, "the use cases give every file its time"
        return DayFile(
            id=record.id,
            name=record.name,
            source=record.source,
            status=record.status,
            received_at=record.received_at,
            lines=record.actual_lines,
            counts=self.data.file_counts.get(record.id),
            problem_count=self.data.problem_counts.get(record.id, len(record.reasons)),
            reasons=record.reasons if with_reasons else (),
            archive_path=record.archive_path,
        )

    def day_summaries(self, days: Sequence[dt.date]) -> List[DaySummary]:
        summaries = []
        for day in days:
            mails = [e for e in self.data.outbox if e.mail.day == day]
            summaries.append(
                DaySummary(
                    day=day,
                    files=tuple(self._day_file(r, False) for r in self.data.files if r.day == day),
                    session=self.data.sessions.get(day),
                    mails_queued=len(mails),
                    mails_sent=sum(1 for e in mails if e.sent_at is not None),
                    no_file_alert=any(e.mail.event is MailEvent.NO_FILE for e in mails),
                )
            )
        return summaries

    def day_files(self, day: dt.date) -> List[DayFile]:
        return [self._day_file(r, True) for r in self.data.files if r.day == day]

    def metrics_snapshot(self, today: dt.date) -> MetricsSnapshot:
        imported = [r for r in self.data.files if r.status is FileStatus.IMPORTED]
        counts = [self.data.file_counts[r.id] for r in imported if r.id in self.data.file_counts]
        finished = [
            s
            for s in self.data.sessions.values()
            if s.state in (SessionState.COMPLETED, SessionState.FAILED) and s.started_at and s.finished_at
        ]
        last = max(finished, key=lambda s: s.finished_at) if finished else None  # type: ignore[arg-type,return-value]
        checks = dict(self.data.checks)
        poll = checks.pop("poll", (False, None, None, 0))
        today_session = self.data.sessions.get(today)
        return MetricsSnapshot(
            last_import_at=max((r.received_at for r in imported if r.received_at), default=None),
            poll_last_success_at=poll[2],
            poll_failures=poll[3],
            lines_imported={
                InvoiceStatus.VALID.value: sum(c.valid for c in counts),
                InvoiceStatus.NOT_FOUND.value: sum(c.not_found for c in counts),
                InvoiceStatus.ALREADY_EXPORTED.value: sum(c.stored - c.valid - c.not_found for c in counts),
            },
            today_state=today_session.state if today_session else SessionState.NONE,
            last_session_duration=(last.finished_at - last.started_at).total_seconds() if last else None,  # type: ignore[operator]
            outbox_pending=sum(1 for e in self.data.outbox if e.sent_at is None),
            outbox_oldest_pending_at=min(
                (e.queued_at for e in self.data.outbox if e.sent_at is None and e.queued_at is not None), default=None
            ),
            dependencies={name: values[0] for name, values in checks.items() if name in DEPENDENCIES},
        )

    def record_poll(self, now: dt.datetime, ok: bool) -> None:
        self.record_check("poll", now, ok, "")

    def record_check(self, dependency: str, now: dt.datetime, ok: bool, detail: str) -> None:
        _, _, last_success, failures = self.data.checks.get(dependency, (False, now, None, 0))
        self.data.checks[dependency] = (ok, now, now if ok else last_success, failures + (0 if ok else 1))

    def last_check(self, dependency: str) -> Optional[dt.datetime]:
        check = self.data.checks.get(dependency)
        return check[1] if check else None

    def last_success(self, dependency: str) -> Optional[dt.datetime]:
        check = self.data.checks.get(dependency)
        return check[2] if check else None

    def _final_or_none(self, day: dt.date) -> bool:
        session = self.data.sessions.get(day)
        return session is None or session.state in FINAL

    def archived_files_before(self, day: dt.date) -> List[Tuple[int, dt.date, str]]:
        return [
            (r.id, r.day, r.archive_path)
            for r in self.data.files
            if r.id is not None
            and r.day < day
            and r.id not in self.data.archive_deleted
            and r.archive_path
            and self._final_or_none(r.day)
        ]

    def exports_before(self, day: dt.date) -> List[Tuple[dt.date, str]]:
        return [
            (d, s.export_file)
            for d, s in sorted(self.data.sessions.items())
            if d < day and s.export_file and d not in self.data.export_deleted and s.state in FINAL
        ]

    def mark_archive_deleted(self, file_id: int, now: dt.datetime) -> bool:
        claimed = file_id not in self.data.archive_deleted
        self.data.archive_deleted.add(file_id)
        return claimed

    def mark_export_deleted(self, day: dt.date, now: dt.datetime) -> bool:
        claimed = day not in self.data.export_deleted
        self.data.export_deleted.add(day)
        return claimed


class FakeUnitOfWork(FakeFilesAndLines, FakeSessions, FakeOutbox, FakeEvents, FakeHistory):
    """One transaction of FakeStore, through the same roles as the port (ports/store.py)."""


class WorkerKilled(BaseException):
    """The worker's process dies here (a kill, a crash): nothing in the process can catch it."""


class FakeQueryError(Exception):
    """What PostgreSQL raises for a query it cannot run (a missing column, a broken view)."""


LINE_FIELDS = ("invoice_number", "line_number", "quantity", "description", "value", "day")
VIEW_COLUMNS = ("invoice_number", "invoice_date", "customer_code", "customer_name", "delivery_address")


class FakeStore:
    """The database in memory; ``invoice_view`` stands in for the customer's view.

    Fault switches: ``broken_view`` makes every look-up in the view fail with that message;
    ``die_during_export_after`` kills the worker before that line; ``available`` is the ping."""

    def __init__(self, invoice_view: Optional[Dict[str, Dict[str, Any]]] = None) -> None:
        self.data = FakeData()
        self.invoice_view: Dict[str, Dict[str, Any]] = dict(invoice_view or {})
        self.poll_lock = threading.Lock()
        # When the poll lock was taken, on ``clock`` (the world's FakeClock; without one the
        # store cannot tell how long the lock has been held, as PostgreSQL could not).
        self.clock: Optional[Any] = None
        self.poll_lock_taken_at: Optional[dt.datetime] = None
        self.transaction_lock = threading.RLock()
        self.claimed: Set[int] = set()
        self.session_locks: Dict[dt.date, threading.Lock] = {}
        self.view_columns: Set[str] = set(VIEW_COLUMNS).union(*(row.keys() for row in self.invoice_view.values()))
        self.broken_view: Optional[str] = None
        self.die_during_export_after: Optional[int] = None
        self.export_queries = 0
        # Called with each line's index as the export reads it: lets time pass, closes the session…
        self.on_export_line: Optional[Callable[[int], None]] = None
        self.migrations = 0
        self.available = True
        self.claims_lost = False  # still_claimed says no, as after a database restart
        # Fault switches: the next record_file raises this (its transaction rolls back), once;
        # every unit of work raises this on entry, as a database failing in an unplanned way.
        self.crash_on_record_file: Optional[BaseException] = None
        self.fail_transactions_with: Optional[Exception] = None
        # Columns the stand-in for the customer's view lacks (a fault switch for `warehouse-runner check`).
        self.view_lacks: Set[str] = set()

    def invoice_status(self, invoice_number: str, day: dt.date) -> InvoiceStatus:
        if self.broken_view is not None:
            raise FakeQueryError(self.broken_view)
        if invoice_number not in self.invoice_view:
            return InvoiceStatus.NOT_FOUND
        if any(number == invoice_number and holder != day for number, holder in self.data.exported):
            return InvoiceStatus.ALREADY_EXPORTED
        return InvoiceStatus.VALID

    def migrate(self) -> List[str]:
        self.migrations += 1
        return []

    @contextmanager
    def unit_of_work(self) -> Iterator[FakeUnitOfWork]:
        if not self.available:
            raise DatabaseUnavailable("the fake database is switched off")
        if self.fail_transactions_with is not None:
            raise self.fail_transactions_with
        with self.transaction_lock:
            saved = copy.deepcopy(self.data)
            unit = FakeUnitOfWork(self)
            try:
                yield unit
            except BaseException:
                unit._restore(saved)
                raise
            finally:
                self.claimed -= unit.claims

    @contextmanager
    def exclusive_poll(self) -> Iterator[bool]:
        acquired = self.poll_lock.acquire(blocking=False)
        if acquired:
            self.poll_lock_taken_at = self.clock.now() if self.clock is not None else None
        try:
            yield acquired
        finally:
            if acquired:
                self.poll_lock_taken_at = None
                self.poll_lock.release()

    def poll_lock_held_for(self) -> Optional[dt.timedelta]:
        if not self.poll_lock.locked() or self.poll_lock_taken_at is None or self.clock is None:
            return None
        return self.clock.now() - self.poll_lock_taken_at

    def still_claimed(self, day: dt.date) -> bool:
        lock = self.session_locks.get(day)
        return lock is not None and lock.locked() and not self.claims_lost

    @contextmanager
    def claim_session(self, day: dt.date) -> Iterator[bool]:
        lock = self.session_locks.setdefault(day, threading.Lock())
        acquired = lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()

    @contextmanager
    def export_lines(self, day: dt.date, columns: Sequence[str], skip: int) -> Iterator[Iterator[bytes]]:
        self.export_queries += 1
        if self.broken_view is not None:
            raise FakeQueryError(self.broken_view)
        unknown = [c for c in columns if c not in LINE_FIELDS and c not in self.view_columns]
        if unknown:
            raise FakeQueryError(
                'column v.{} does not exist\nLINE 1: SELECT l.invoice_number, v."{}"'.format(unknown[0], unknown[0])
            )

        def lines() -> Iterator[bytes]:
            valid = [s for s in self.data.lines if s.day == day and s.invoice_status is InvoiceStatus.VALID]
            for given, stored in enumerate(sorted(valid, key=lambda s: s.line.line_number)[skip:]):
                if given == self.die_during_export_after:
                    self.die_during_export_after = None
                    raise WorkerKilled("worker died")
                if self.on_export_line is not None:
                    self.on_export_line(given)
                view_row = self.invoice_view.get(stored.line.invoice_number, {})
                line_values = dict(
                    zip(
                        LINE_FIELDS,
                        (
                            stored.line.invoice_number,
                            stored.line.line_number,
                            stored.line.quantity,
                            stored.line.description,
                            stored.line.value,
                            stored.day,
                        ),
                    )
                )
                values = tuple(line_values[c] if c in line_values else view_row.get(c) for c in columns)
                yield export_line(values).encode("utf-8") + b"\n"

        yield lines()

    def ping(self) -> bool:
        return self.available

    def missing_view_columns(self, export_columns: Sequence[str]) -> List[str]:
        present = self.view_columns - self.view_lacks
        return sorted(set(view_columns_needed(export_columns)) - present)

    # Helpers for assertions.
    def mails(self, event: Optional[str] = None) -> List[Mail]:
        return [e.mail for e in self.data.outbox if event is None or e.mail.event.value == event]

    def stored_lines(self, day: Optional[dt.date] = None) -> List[StoredLine]:
        return [s for s in self.data.lines if day is None or s.day == day]


# --- inbound FTP ---------------------------------------------------------------------------


class FakeInboundConnection:
    def __init__(self, server: "FakeInbound") -> None:
        self.server = server
        self.lost = False

    def check(self, command: str) -> None:
        """A command on a connection the server has dropped fails, as ftplib's would; DELE logs
        on again first, as FtplibFiles does."""
        if command in self.server.drop_before:
            self.server.drop_before.discard(command)
            self.lost = True
        if self.lost and command == "DELE":
            if "LOGIN" in self.server.failing:
                raise TransferError(
                    "cannot log on to {}: 530 refused by the fake server".format(self.server.describe())
                )
            self.server.connections += 1
            self.lost = False
        if self.lost:
            raise TransferError("{} failed: 421 the server dropped the connection".format(command))
        self.server.check(command)

    def list_files(self) -> List[RemoteFile]:
        self.check("LIST")
        return [
            RemoteFile(name=name, size=len(data) if self.server.listing_sizes else None)
            for name, data in sorted(self.server.files.items())
        ]

    def size(self, name: str) -> Optional[int]:
        self.check("SIZE")
        data = self.server.files.get(name)
        return None if data is None or not self.server.size_command else len(data)

    def download(self, name: str, write: Callable[[bytes], None]) -> int:
        self.check("RETR")
        if name not in self.server.files:
            raise TransferError("RETR {} failed: 550 no such file".format(name))
        data = self.server.files[name]
        if self.server.cut_download_after is not None:
            data = data[: self.server.cut_download_after]
        write(data)
        self.server.downloads.append(name)
        if self.server.grow_during_download:
            self.server.files[name] = self.server.files[name] + self.server.grow_during_download
        return len(data)

    def delete(self, name: str) -> None:
        self.check("DELE")
        if name not in self.server.files:
            raise TransferError("DELE {} failed: 550 no such file".format(name))
        if self.server.on_delete is not None:
            self.server.on_delete(name)
        del self.server.files[name]
        self.server.deleted.append(name)


class FakeInbound:
    """A folder of files; ``failing`` names the commands that answer an error, ``drop_before``
    those before which the server drops the connection (once each: an idle timeout)."""

    def __init__(self, files: Optional[Dict[str, bytes]] = None) -> None:
        self.files: Dict[str, bytes] = dict(files or {})
        self.failing: Set[str] = set()
        self.drop_before: Set[str] = set()
        self.cut_download_after: Optional[int] = None
        self.grow_during_download: bytes = b""
        self.size_command = True  # False: a server without SIZE
        self.listing_sizes = True  # False: a listing without sizes (NLST)
        self.downloads: List[str] = []
        self.deleted: List[str] = []
        self.connections = 0
        self.on_delete: Optional[Callable[[str], None]] = None

    def check(self, command: str) -> None:
        if command in self.failing:
            raise TransferError("{} failed: 550 refused by the fake server".format(command))

    @contextmanager
    def connect(self) -> Iterator[FakeInboundConnection]:
        self.check("LOGIN")
        self.connections += 1
        yield FakeInboundConnection(self)

    def describe(self) -> str:
        return "fake://inbound"


# --- archive -------------------------------------------------------------------------------


class FakePendingFile:
    def __init__(self, archive: "FakeArchive") -> None:
        self.archive = archive
        self.buffer = io.BytesIO()
        self.kept: Optional[str] = None

    def write(self, data: bytes) -> None:
        self.buffer.write(data)

    def keep(self, day: dt.date, name: str) -> str:
        path = "{}/{}".format(day.isoformat(), name.replace("/", "_"))
        suffix = 0
        candidate = path
        while candidate in self.archive.files and self.archive.files[candidate] != self.buffer.getvalue():
            suffix += 1
            candidate = "{}.{}".format(path, suffix)
        self.archive.files[candidate] = self.buffer.getvalue()
        self.kept = candidate
        return candidate


class FakeArchive:
    """``fail_delete``: every deletion raises it (a file the service may not delete);
    ``partial_downloads``: what killed polls left behind."""

    def __init__(self) -> None:
        self.files: Dict[str, bytes] = {}
        self.pending = 0
        self.fail_delete: Optional[BaseException] = None
        # What killed polls left in incoming/: the names clear_partial_files removes.
        self.partial_downloads: List[str] = []

    @contextmanager
    def receive(self, *, download: bool = False) -> Iterator[FakePendingFile]:
        self.pending += 1
        try:
            yield FakePendingFile(self)
        finally:
            self.pending -= 1

    def clear_partial_files(self) -> List[str]:
        removed, self.partial_downloads = self.partial_downloads, []
        return removed

    def open(self, path: str) -> BinaryIO:
        if path not in self.files:
            raise FileNotFoundError(path)
        return io.BytesIO(self.files[path])

    def delete(self, path: str) -> bool:
        if self.fail_delete is not None:
            raise self.fail_delete
        return self.files.pop(path, None) is not None


# --- mail ----------------------------------------------------------------------------------


class FakeMailer:
    """``down`` refuses every mail; ``fail_mail`` makes one outbox mail raise the given error."""

    def __init__(self) -> None:
        self.sent: List[Mail] = []
        self.down = False
        self.failing: Dict[int, Exception] = {}

    def fail_mail(self, mail_id: int, error: Exception) -> None:
        self.failing[mail_id] = error

    def send(self, mail: Mail) -> None:
        if self.down:
            raise MailDeliveryError("SMTP fake: connection refused")
        if mail.id in self.failing:
            raise self.failing[mail.id]
        self.sent.append(mail)

    def events(self) -> List[str]:
        return [mail.event.value for mail in self.sent]


# --- outbound FTP, remote log, export files -----------------------------------------------


class FakeOutbound:
    """The outbound server's folder, the upload's temporary file included (named as FtplibFiles
    names it). Fault switches: ``fail_next`` uploads are refused at STOR; ``refuse_rename_next``
    renames are refused (the temporary file stays); ``lose_rename_reply_next`` renames go through
    but their reply is lost (a TransferError after the file is in place); ``unreachable`` makes
    SIZE and DELE fail (the server cannot be asked); ``on_stored(name)`` runs once the temporary file is
    stored, before the check before the rename; ``on_renaming(name)`` after that check, before the
    rename; ``on_upload(name, data)`` plays the customer's importer once the
    file is in place."""

    def __init__(self) -> None:
        self.files: Dict[str, bytes] = {}
        self.fail_next = 0
        self.refuse_rename_next = 0
        self.lose_rename_reply_next = 0
        self.unreachable = False
        self.attempts = 0
        self.on_stored: Optional[Callable[[str], None]] = None
        self.on_renaming: Optional[Callable[[str], None]] = None
        self.on_upload: Optional[Callable[[str, bytes], None]] = None

    @staticmethod
    def temporary(name: str) -> str:
        return "." + name + ".part"

    def upload(
        self, name: str, open_local: Callable[[], BinaryIO], before_rename: Optional[Callable[[], None]] = None
    ) -> None:
        self.attempts += 1
        temporary = self.temporary(name)
        if self.fail_next:
            self.fail_next -= 1
            raise TransferError("STOR {} failed: 451 refused by the fake server".format(temporary))
        with open_local() as source:
            self.files[temporary] = source.read()
        if self.on_stored is not None:
            self.on_stored(name)
        if before_rename is not None:
            before_rename()
        if self.on_renaming is not None:
            self.on_renaming(name)
        if self.refuse_rename_next:
            self.refuse_rename_next -= 1
            raise TransferError("RNFR/RNTO {} {} failed: 550 refused by the fake server".format(temporary, name))
        if temporary not in self.files:
            raise TransferError("RNFR {} failed: 550 no such file".format(temporary))
        self.files[name] = self.files.pop(temporary)
        if self.on_upload is not None:
            self.on_upload(name, self.files[name])
        if self.lose_rename_reply_next:
            self.lose_rename_reply_next -= 1
            raise TransferError("RNTO {}: the connection was reset before the reply".format(name))

    def size(self, name: str) -> Optional[int]:
        if self.unreachable:
            raise TransferError("SIZE {}: the fake server cannot be reached".format(name))
        data = self.files.get(name)
        return None if data is None else len(data)

    @classmethod
    def set_aside(cls, name: str) -> str:
        return cls.temporary(name) + ".closed"

    def temporary_present(self, name: str) -> bool:
        if self.unreachable:
            raise TransferError("SIZE {}: the fake server cannot be reached".format(self.temporary(name)))
        return self.temporary(name) in self.files or self.set_aside(name) in self.files

    def fence(self, name: str) -> bool:
        if self.unreachable:
            raise TransferError("RNFR {}: the fake server cannot be reached".format(self.temporary(name)))
        if self.temporary(name) in self.files:
            self.files[self.set_aside(name)] = self.files.pop(self.temporary(name))
            return True
        return self.set_aside(name) in self.files

    def discard(self, name: str) -> bool:
        if self.unreachable:
            raise TransferError("DELE {}: the fake server cannot be reached".format(self.temporary(name)))
        removed = [self.files.pop(n, None) for n in (self.temporary(name), self.set_aside(name))]
        return any(data is not None for data in removed)

    def describe(self) -> str:
        return "fake://outbound"


class FakeLogFollower:
    def __init__(self, remote: "FakeRemoteLog", path: str) -> None:
        self.remote = remote
        self.path = path
        self.offset = 0

    def skip_existing(self) -> int:
        self.remote.check()
        self.offset = len(self.remote.logs.get(self.path, []))
        return self.offset

    def start_at(self, position: int) -> None:
        self.offset = position

    def read_new(self) -> Iterator[str]:
        """Lines one at a time, as the adapter gives them: the position moves past each."""
        self.remote.check()
        lines = self.remote.logs.get(self.path, [])
        if len(lines) < self.offset:
            self.offset = 0
        while self.offset < len(lines):
            self.offset += 1
            yield lines[self.offset - 1]


class FakeRemoteLog:
    def __init__(self) -> None:
        self.logs: Dict[str, List[str]] = {}
        self.unreadable = False

    def append(self, path: str, line: str) -> None:
        self.logs.setdefault(path, []).append(line)

    def check(self) -> None:
        if self.unreadable:
            raise TransferError("reading the fake log: connection refused")

    @contextmanager
    def follow(self, path: str) -> Iterator[FakeLogFollower]:
        yield FakeLogFollower(self, path)

    def describe(self) -> str:
        return "fake://remote-log"


class FakeExportWriter:
    def __init__(self, buffer: bytearray) -> None:
        self.buffer = buffer
        self.synced = len(buffer)

    def write(self, lines: bytes) -> None:
        self.buffer.extend(lines)

    def sync(self) -> None:
        self.synced = len(self.buffer)


class FakeExportFiles:
    def __init__(self) -> None:
        self.files: Dict[Tuple[dt.date, str], bytearray] = {}

    def complete_lines(self, day: dt.date, name: str) -> int:
        return bytes(self.files.get((day, name), b"")).count(b"\n")

    @contextmanager
    def writer(self, day: dt.date, name: str, keep_lines: int) -> Iterator[FakeExportWriter]:
        buffer = self.files.setdefault((day, name), bytearray())
        kept = b"".join(bytes(buffer).splitlines(keepends=True)[:keep_lines])
        buffer[:] = kept
        yield FakeExportWriter(buffer)

    def open(self, day: dt.date, name: str) -> BinaryIO:
        if (day, name) not in self.files:
            raise FileNotFoundError(name)
        return io.BytesIO(bytes(self.files[(day, name)]))

    def discard(self, day: dt.date, name: str) -> bool:
        return self.files.pop((day, name), None) is not None

    def keep_aside(self, day: dt.date, name: str, kept: str) -> bool:
        data = self.files.pop((day, name), None)
        if data is not None:
            self.files[(day, kept)] = data
        return data is not None

    def discard_kept(self, day: dt.date, name: str) -> int:
        kept = [key for key in self.files if key[0] == day and re.fullmatch(re.escape(name) + r"\.run\d+", key[1])]
        for key in kept:
            del self.files[key]
        return len(kept)

    def lines(self, day: dt.date, name: str) -> List[str]:
        return bytes(self.files[(day, name)]).decode("utf-8").splitlines()
