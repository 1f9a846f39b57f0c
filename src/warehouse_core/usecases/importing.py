"""Importing one received, archived file: shared by the FTP poll and the manual upload."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Optional

from warehouse_core.audit import SYSTEM, Event, EventKind
from warehouse_core.days import FileCounts
from warehouse_core.model import (
    FileSource,
    FileStatus,
    ImportSummary,
    InboundFileName,
    InboundFileRecord,
    MailEvent,
    Problem,
)
from warehouse_core.parsing import FileFacts, ParseTally, parse_blocks
from warehouse_core.ports import MailRenderer, UnitOfWork
from warehouse_core.usecases.mails import compose, queue_mail

log = logging.getLogger(__name__)


class _Rejected(Exception):
    """Raised inside the savepoint so that none of an invalid file's lines stay."""


@dataclass(frozen=True)
class ReceivedFile:
    """A file that is complete, verified and in the archive."""

    name: str
    day: dt.date
    source: FileSource
    facts: FileFacts
    archive_path: str
    open: Callable[[], BinaryIO]
    received_at: dt.datetime
    actor: str = SYSTEM

    @property
    def declared_count(self) -> Optional[int]:
        parsed = InboundFileName.parse(self.name)
        return parsed.declared_count if parsed else None


def import_received_file(uow: UnitOfWork, renderer: MailRenderer, received: ReceivedFile) -> ImportSummary:
    """Record the file and store its lines, or reject it whole, or set it aside; queue the mail that
    says which, and write the day's events of each step."""
    if uow.day_has_data(received.day):
        return _set_aside(uow, renderer, received)
    file_id = uow.record_file(_record(received, FileStatus.IMPORTED))
    _event(
        uow,
        received,
        EventKind.FILE_ARCHIVED,
        path=received.archive_path,
        size=received.facts.size,
        lines=received.facts.line_count,
        sha256=received.facts.sha256,
        source=received.source.value,
    )
    tally = ParseTally()
    count_problem = _count_problem(received)
    if count_problem is not None:
        tally.add_problem(count_problem)
    try:
        with uow.savepoint():
            with received.open() as stream:
                stored = uow.insert_lines(file_id, received.day, parse_blocks(stream, received.facts.encoding, tally))
            if tally.problem_count:
                raise _Rejected()
    except _Rejected:
        return _reject(uow, renderer, received, file_id, tally)
    uow.open_session(received.day)
    counts = FileCounts(
        stored=stored.stored,
        ignored=tally.ignored_lines,
        not_found=stored.not_found_lines,
        valid=stored.stored - stored.not_found_lines - stored.already_exported_lines,
    )
    uow.record_file_counts(file_id, counts)
    _event(
        uow,
        received,
        EventKind.FILE_IMPORTED,
        stored=counts.stored,
        ignored=counts.ignored,
        not_found=counts.not_found,
        valid=counts.valid,
        not_found_invoices=list(stored.not_found[:100]),
    )
    summary = ImportSummary(
        file_name=received.name,
        day=received.day,
        status=FileStatus.IMPORTED,
        total_lines=tally.total_lines,
        stored_lines=stored.stored,
        ignored_lines=tally.ignored_lines,
        not_found=stored.not_found,
    )
    queue_mail(
        uow,
        compose(
            renderer,
            MailEvent.IMPORT_SUMMARY,
            received.day,
            invoices={"not_found": summary.not_found, "already_exported": stored.already_exported},
            summary=summary,
            source=received.source.value,
        ),
        received.received_at,
        actor=received.actor,
    )
    log.info(
        "imported %s: %d lines stored, %d ignored, %d invoices not found",
        received.name,
        summary.stored_lines,
        summary.ignored_lines,
        len(summary.not_found),
    )
    return summary


def _record(received: ReceivedFile, status: FileStatus) -> InboundFileRecord:
    return InboundFileRecord(
        name=received.name,
        day=received.day,
        source=received.source,
        sha256=received.facts.sha256,
        declared_count=received.declared_count,
        actual_lines=received.facts.line_count,
        status=status,
        archive_path=received.archive_path,
        received_at=received.received_at,
    )


def _event(uow: UnitOfWork, received: ReceivedFile, kind: EventKind, **detail: Any) -> None:
    uow.record_event(Event(received.day, kind, received.received_at, received.actor, dict(detail, file=received.name)))


def _count_problem(received: ReceivedFile) -> Optional[Problem]:
    declared = received.declared_count
    if declared is None or received.facts.line_count == declared + 1:
        return None
    return Problem(
        line=0,
        reason="the name declares {} records ({} lines) but the file has {} lines".format(
            declared, declared + 1, received.facts.line_count
        ),
    )


def _reject(
    uow: UnitOfWork, renderer: MailRenderer, received: ReceivedFile, file_id: int, tally: ParseTally
) -> ImportSummary:
    uow.set_file_outcome(file_id, FileStatus.REJECTED, tuple(tally.problems))
    uow.record_problem_count(file_id, tally.problem_count)
    _event(
        uow,
        received,
        EventKind.FILE_REJECTED,
        problem_count=tally.problem_count,
        reasons=[problem.as_dict() for problem in tally.problems],
    )
    summary = ImportSummary(
        file_name=received.name,
        day=received.day,
        status=FileStatus.REJECTED,
        total_lines=tally.total_lines,
        stored_lines=0,
        ignored_lines=tally.ignored_lines,
        problems=tuple(tally.problems),
        problem_count=tally.problem_count,
    )
    queue_mail(
        uow,
        compose(renderer, MailEvent.IMPORT_FAILED, received.day, summary=summary, source=received.source.value),
        received.received_at,
        actor=received.actor,
    )
    log.warning(
        "rejected %s: %d problems, first: line %d: %s",
        received.name,
        tally.problem_count,
        tally.problems[0].line,
        tally.problems[0].reason,
    )
    return summary


def _set_aside(uow: UnitOfWork, renderer: MailRenderer, received: ReceivedFile) -> ImportSummary:
    uow.record_file(_record(received, FileStatus.EXTRA))
    _event(
        uow,
        received,
        EventKind.FILE_SET_ASIDE,
        path=received.archive_path,
        size=received.facts.size,
        lines=received.facts.line_count,
        source=received.source.value,
    )
    summary = ImportSummary(
        file_name=received.name,
        day=received.day,
        status=FileStatus.EXTRA,
        total_lines=received.facts.line_count,
        stored_lines=0,
        ignored_lines=0,
    )
    queue_mail(
        uow,
        compose(
            renderer,
            MailEvent.EXTRA_FILE,
            received.day,
            summary=summary,
            archive_path=received.archive_path,
            source=received.source.value,
        ),
        received.received_at,
        actor=received.actor,
    )
    log.warning(
        "set aside %s: %s already has imported data; kept at %s", received.name, received.day, received.archive_path
    )
    return summary
