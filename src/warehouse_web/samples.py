"""Sample values of the page templates, for the start-up check (SPEC §8): each page renders with
values like those its view gives, every branch filled, so a customer's page template that names
something the service does not give stops the start instead of failing at the first request."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Optional

from warehouse_core.audit import Event, EventKind
from warehouse_core.days import DayFile, DaySummary, FileCounts
from warehouse_core.model import Delivery, FileSource, FileStatus, Problem, SessionState, WorkSession
from warehouse_core.usecases.history import DaysPage
from warehouse_web.views import REFUSED_IN, message, refusal_texts, status_object

DAY = dt.date(2026, 11, 26)
AT = dt.datetime(2026, 11, 26, 10, 0, 0)
# One detail with every key an event of any kind carries, so each kind's sentence renders.
DETAIL: Dict[str, Any] = {
    "file": "Letture20261126083015123_9.txt",
    "size": 312,
    "lines": 10,
    "expected_lines": 10,
    "path": "2026-11-26/Letture20261126083015123_9.txt",
    "source": "ftp",
    "sha256": "ab" * 32,
    "stored": 9,
    "ignored": 1,
    "not_found": 2,
    "valid": 6,
    "problem_count": 1,
    "subject": "Invoice file imported",
    "event": "import-summary",
    "error": "SMTP 127.0.0.1:25: 421 try later",
    "retry_at": "2026-11-26T10:01:00+01:00",
    "written": 6,
    "total": 6,
    "records": 6,
    "reason": "the remote importer reported an error",
    "from": "failed",
    "redeliver": True,
    "already_recorded": False,
}


def _days() -> DaysPage:
    counts = FileCounts(stored=9, ignored=1, not_found=2, valid=6)
    imported = DayFile(
        id=1,
        name="Letture20261126083015123_9.txt",
        source=FileSource.FTP,
        status=FileStatus.IMPORTED,
        received_at=AT,
        lines=10,
        counts=counts,
        archive_path="2026-11-26/Letture20261126083015123_9.txt",
    )
    rejected = DayFile(
        id=2,
        name="Letture20261126101500000_5.txt",
        source=FileSource.UPLOAD,
        status=FileStatus.REJECTED,
        received_at=AT,
        lines=6,
        problem_count=3,
        reasons=(Problem(3, "the quantity is not a whole number"), Problem(0, "the file is empty")),
    )
    completed = WorkSession(
        day=DAY,
        state=SessionState.COMPLETED,
        total=6,
        processed=6,
        started_at=AT,
        finished_at=AT,
        export_file="Spedizioni20261126_6.txt",
    )
    failed = WorkSession(
        day=DAY - dt.timedelta(days=1), state=SessionState.FAILED, total=6, processed=3, started_at=AT, finished_at=AT
    )
    events = tuple(Event(DAY, kind, AT, "system", dict(DETAIL)) for kind in EventKind)
    return DaysPage(
        days=[
            DaySummary(
                day=DAY,
                files=(imported, rejected),
                session=completed,
                mails_queued=3,
                mails_sent=2,
                events=events,
            ),
            DaySummary(day=failed.day, files=(rejected,), session=failed, no_file_alert=True, events=events),
            DaySummary(day=DAY - dt.timedelta(days=2), no_file_alert=True),
        ],
        next=DAY - dt.timedelta(days=3),
    )


def page_sample(name: str) -> Optional[Dict[str, Any]]:
    """The values of page template ``name``, computed inside a request (the sentences come from the
    app); None for a template that is not a page of its own (a layout, macros, a mail)."""
    if name == "index.html":
        session = WorkSession(day=DAY, state=SessionState.RUNNING, total=6, processed=3, started_at=AT)
        earlier = [
            WorkSession(
                day=DAY - dt.timedelta(days=n), state=state, delivery=delivery, detail="the remote importer failed"
            )
            for n, (state, delivery) in enumerate(
                [
                    (SessionState.READY, None),
                    (SessionState.RUNNING, None),
                    (SessionState.FAILED, Delivery.UNKNOWN),
                    (SessionState.FAILED, Delivery.NO),
                    (SessionState.CLOSED, Delivery.UNKNOWN),
                ],
                start=1,
            )
        ]
        return {
            "status": status_object(session, earlier),
            "refusals": refusal_texts(),
            "refused_in": REFUSED_IN,
            "too_large": message("too_large", limit_mb=50),
        }
    if name == "days.html":
        return {"page": _days(), "today": DAY}
    if name == "day.html":
        summary = _days().days[0]
        return {"day": summary, "check": summary.reconciliation()}
    if name == "login.html":
        return {"error": message("bad_login")}
    if name == "error.html":
        return {"status": 404, "text": message("no_data", day=DAY.isoformat())}
    if name == "status_message.txt":
        return {"session": WorkSession(day=DAY, state=SessionState.FAILED, detail="the remote importer failed")}
    return None
