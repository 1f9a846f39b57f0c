"""The history of the days (SPEC §7): the list, one day with its timeline, and its downloads.

Every read goes through the store's History and Events roles, which read one row per file, per
session, per mail or per event: never the lines table (its counts are stored at import time).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, replace
from typing import BinaryIO, Dict, Iterator, List, Optional, Tuple, Union

from warehouse_core.days import DayFile, DaySummary
from warehouse_core.errors import InvalidArgument, WarehouseError
from warehouse_core.model import FileStatus
from warehouse_core.parsing import CHUNK_SIZE
from warehouse_core.ports import Archive, ExportFiles, Transactions, UnitOfWork

PAGE_SIZE = 60
MAX_PAGE_SIZE = 366


class NotFound(WarehouseError):
    """Nothing of that kind for that day (HTTP 404); ``code`` names what, for the templates."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def page_limit(value: Union[str, int]) -> int:
    """How many days a page shows: a whole number from 1 to MAX_PAGE_SIZE, or InvalidArgument."""
    try:
        limit = int(value.strip()) if isinstance(value, str) else int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidArgument(code="bad_limit", lowest=1, highest=MAX_PAGE_SIZE)
    return limit


@dataclass(frozen=True)
class DaysPage:
    days: List[DaySummary]
    next: Optional[dt.date]


def list_days(store: Transactions[UnitOfWork], before: Optional[dt.date] = None, limit: int = PAGE_SIZE) -> DaysPage:
    """One page of days that had anything, newest first; ``next`` is the ``before`` of the next page."""
    limit = page_limit(limit)
    with store.unit_of_work() as uow:
        days = uow.history_days(before, limit + 1)
        summaries = uow.day_summaries(days[:limit])
    return DaysPage(days=summaries, next=days[limit - 1] if len(days) > limit else None)


def day_detail(store: Transactions[UnitOfWork], day: dt.date) -> DaySummary:
    """The day with every file (and every reason) and its timeline; NotFound when it had nothing."""
    with store.unit_of_work() as uow:
        [summary] = uow.day_summaries([day])
        files = uow.day_files(day)
        events = uow.events_of_day(day)
    if not files and not events and summary.session is None and summary.mails_queued == 0:
        raise NotFound("nothing happened on {}".format(day.isoformat()), code="no_day")
    return replace(summary, files=tuple(files), events=tuple(events))


def inbound_download(
    store: Transactions[UnitOfWork], archive: Archive, day: dt.date, name: Optional[str] = None
) -> Tuple[str, BinaryIO]:
    """The archived file as received: the day's file, or the one of that day named ``name``."""
    summary = day_detail(store, day)
    chosen = summary.file if name is None else next((f for f in summary.files if f.name == name), None)
    if chosen is None or not chosen.archive_path:
        raise NotFound(
            "{} has no archived file{}".format(day.isoformat(), " " + name if name else ""), code="no_inbound"
        )
    try:
        return chosen.name, archive.open(chosen.archive_path)
    except (OSError, ValueError):
        raise NotFound("the archived file {} is gone".format(chosen.name), code="inbound_gone") from None


def export_download(store: Transactions[UnitOfWork], exports: ExportFiles, day: dt.date) -> Tuple[str, BinaryIO]:
    """The day's export file as uploaded."""
    summary = day_detail(store, day)
    name = summary.session.export_file if summary.session is not None else None
    if name is None:
        raise NotFound("{} has no export file".format(day.isoformat()), code="no_export")
    try:
        return name, exports.open(day, name)
    except OSError:
        raise NotFound("the export file {} is gone".format(name), code="export_gone") from None


def problems_csv(store: Transactions[UnitOfWork], archive: Archive, day: dt.date) -> Iterator[str]:
    """CSV of the day's rejected lines: file, line number, reason, and the line as received when the
    archived file is still there."""
    summary = day_detail(store, day)
    rejected = [f for f in summary.files if f.status is FileStatus.REJECTED]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["file", "line", "reason", "text"])
    yield _take(buffer)
    for day_file in rejected:
        texts = _line_texts(archive, day_file)
        for problem in day_file.reasons:
            cells = (day_file.name, problem.reason, texts.get(problem.line, ""))
            name, reason, text = (spreadsheet_safe(cell) for cell in cells)
            writer.writerow([name, problem.line, reason, text])
        yield _take(buffer)


# What a spreadsheet may take for the start of a formula (OWASP, "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """The cell with a leading single quote when it starts like a formula: problems.csv holds text
    the sender wrote, and it is opened in a spreadsheet."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _line_texts(archive: Archive, day_file: DayFile) -> Dict[int, str]:
    """The text of the lines the reasons name (read once, streaming; the reasons are at most 100)."""
    wanted = {problem.line for problem in day_file.reasons if problem.line > 0}
    found: Dict[int, str] = {}
    if not wanted or not day_file.archive_path:
        return found
    try:
        stream = archive.open(day_file.archive_path)
    except (OSError, ValueError):
        return found
    with stream:
        last = max(wanted)
        for number, raw in enumerate(_lines(stream), start=1):
            if number in wanted:
                found[number] = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            if number >= last:
                break
    return found


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    pending = b""
    for chunk in iter(lambda: stream.read(CHUNK_SIZE), b""):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line
    if pending:
        yield pending
