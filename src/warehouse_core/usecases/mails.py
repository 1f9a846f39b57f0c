"""Rendering a mail for the outbox, and queuing it with the event that says so."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from typing import Any, Dict, Iterator, Mapping, Optional, Protocol, Sequence, Tuple

from warehouse_core.audit import SYSTEM, Event, EventKind
from warehouse_core.errors import one_line
from warehouse_core.model import (
    Attachment,
    FileStatus,
    ImportSummary,
    Mail,
    MailEvent,
    Problem,
    SessionState,
    WorkSession,
)
from warehouse_core.ports import Events, MailRenderer, Outbox
from warehouse_core.usecases.history import spreadsheet_safe

# SPEC §6: a mail lists at most this many invoices in its body; the whole list goes as a CSV.
LISTED_IN_BODY = 200
INVOICES_CSV = "invoices.csv"

log = logging.getLogger(__name__)


class InvoiceList:
    """A list of invoices as a mail template sees it: ``len()`` and ``total`` count them all,
    iterating gives at most LISTED_IN_BODY of them (``shown``), ``more`` says how many are left
    to the attachment. A customer's template written for a plain list keeps working, bounded."""

    def __init__(self, invoices: Sequence[str]) -> None:
        self.shown: Tuple[str, ...] = tuple(invoices[:LISTED_IN_BODY])
        self.total = len(invoices)
        self.more = self.total - len(self.shown)
        self.attachment_name = INVOICES_CSV

    def __iter__(self) -> Iterator[str]:
        return iter(self.shown)

    def __len__(self) -> int:
        return self.total

    def __bool__(self) -> bool:
        return self.total > 0


def compose(
    renderer: MailRenderer,
    event: MailEvent,
    day: dt.date,
    *,
    invoices: Optional[Mapping[str, Sequence[str]]] = None,
    **context: Any,
) -> Mail:
    """The mail of ``event``. Each list in ``invoices`` reaches the templates under its name as an
    InvoiceList; when one of them is longer than the body lists, every list goes with the mail
    whole in invoices.csv (invoice, list name). A template that cannot be rendered (a customer's
    typo, met months later at the first such event) never stops what the mail reports (SPEC §5
    "The failure path cannot fail"): the built-in template is used instead, and the mail says so."""
    lists = dict(invoices or {})
    values = dict(context, day=day, event=event.value)
    values.update((name, InvoiceList(numbers)) for name, numbers in lists.items())
    try:
        subject, text, html = renderer.render(event, values)
    except Exception as error:
        log.exception(
            "the %s mail of %s: its template could not be rendered; the built-in one is used", event.value, day
        )
        subject, text, html = renderer.render(event, dict(values, template_error=one_line(error)), built_in=True)
    attachments: Tuple[Attachment, ...] = ()
    if any(len(numbers) > LISTED_IN_BODY for numbers in lists.values()):
        attachments = (invoices_csv(lists),)
    return Mail(event=event, day=day, subject=subject, text=text, html=html, attachments=attachments)


def invoices_csv(lists: Mapping[str, Sequence[str]]) -> Attachment:
    """Every invoice of the mail's lists, one a row, with the name of its list; a cell that a
    spreadsheet would take for a formula starts with a quote (problems.csv does the same)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["invoice", "list"])
    for name, numbers in lists.items():
        for number in numbers:
            writer.writerow([spreadsheet_safe(number), name])
    return Attachment(name=INVOICES_CSV, media_type="text/csv", content=buffer.getvalue())


class OutboxWithEvents(Outbox, Events, Protocol):
    """A unit of work seen as the two roles a queued mail touches."""


def queue_mail(
    uow: OutboxWithEvents, mail: Mail, at: dt.datetime, *, once_key: Optional[str] = None, actor: str = SYSTEM
) -> bool:
    """Put the mail in the outbox and its ``mail-queued`` event in the day's timeline, in the
    caller's transaction; whether it was queued (``once_key`` may say it already was)."""
    queued = uow.enqueue_mail(mail, once_key=once_key, queued_at=at)
    if queued:
        uow.record_event(
            Event(mail.day, EventKind.MAIL_QUEUED, at, actor, {"event": mail.event.value, "subject": mail.subject})
        )
    return queued


def sample_context(event: MailEvent) -> Dict[str, Any]:
    """Sample values of what ``event``'s mail is composed with, every list filled (and longer than
    a body lists): the start-up check renders each mail template with them (SPEC §8), so a
    template that names a value the service does not give fails at start, not at its first mail."""
    day = dt.date(2026, 11, 26)
    at = dt.datetime(2026, 11, 26, 10, 0, 0)
    invoices = ["6{:08d}".format(i) for i in range(LISTED_IN_BODY + 1)]
    summary = ImportSummary(
        file_name="Letture20261126083015123_9.txt",
        day=day,
        status=FileStatus.IMPORTED,
        total_lines=10,
        stored_lines=9,
        ignored_lines=1,
        not_found=tuple(invoices),
        problems=(Problem(3, "the quantity is not a whole number"),),
        problem_count=1,
    )
    session = WorkSession(
        day=day,
        state=SessionState.COMPLETED,
        total=9,
        processed=9,
        started_at=at,
        finished_at=at,
        export_file="Spedizioni20261126_9.txt",
        detail="the remote importer reported an error",
    )
    names = ["Letture20261126083015123_9.txt"]
    lists: Dict[MailEvent, Dict[str, Any]] = {
        MailEvent.NO_FILE: dict(
            incomplete=names, rejected=names, other_days=names, failed=names, server_error="530 Login incorrect."
        ),
        MailEvent.IMPORT_SUMMARY: dict(
            summary=summary, source="ftp", not_found=InvoiceList(invoices), already_exported=InvoiceList(invoices)
        ),
        MailEvent.IMPORT_FAILED: dict(summary=summary, source="ftp"),
        MailEvent.EXTRA_FILE: dict(summary=summary, source="ftp", archive_path="var/archive/2026-11-26/" + names[0]),
        MailEvent.SESSION_COMPLETED: dict(session=session, not_present=InvoiceList(invoices)),
        MailEvent.SESSION_FAILED: dict(
            session=session, reason="the remote importer reported an error", waited_for=day - dt.timedelta(days=1)
        ),
        MailEvent.SESSION_RETRY: dict(
            actor="cli:ops",
            reason="the consumer fixed its importer",
            previous_detail="the remote importer reported an error",
            failed_at=at,
            redeliver=True,
            export_file=session.export_file,
        ),
    }
    return dict(lists[event], day=day, event=event.value)


def mail_template_sample(name: str) -> Optional[Dict[str, Any]]:
    """The sample values of a mail template (``mail/<event>.subject.txt``, ``.txt``, ``.html``); None
    for any other template (a layout, a page), which the start-up check only compiles."""
    folder, _, file = name.partition("/")
    event = file.partition(".")[0]
    if folder != "mail" or event not in {e.value for e in MailEvent}:
        return None
    return sample_context(MailEvent(event))
