"""A day in hindsight: its files, its session, its mails, and whether its counts reconcile (SPEC §7)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from warehouse_core.audit import Event
from warehouse_core.model import FileSource, FileStatus, Problem, SessionState, WorkSession

FINAL_STATES = (SessionState.COMPLETED, SessionState.FAILED, SessionState.CLOSED)


@dataclass(frozen=True)
class FileCounts:
    """Counts of an imported file, stored when it is imported so that no page counts lines again."""

    stored: int
    ignored: int
    not_found: int
    valid: int


@dataclass(frozen=True)
class DayFile:
    """One received file of the day, as the history shows it. The counts are None for a file
    imported before the history existed (migration 002) and for files that were not imported."""

    id: int
    name: str
    source: FileSource
    status: FileStatus
    received_at: dt.datetime
    lines: int
    counts: Optional[FileCounts] = None
    problem_count: int = 0
    reasons: Tuple[Problem, ...] = ()
    archive_path: str = ""


@dataclass(frozen=True)
class Reconciliation:
    """Lines in the file = stored + ignored; valid lines = lines exported = records the consumer's
    log confirmed. ``reconciled`` is None when there is nothing (yet) to compare; ``differences``
    names each equation that fails (the templates word them)."""

    reconciled: Optional[bool]
    counts: Dict[str, Optional[int]]
    differences: Tuple[str, ...] = ()

    def as_dict(self) -> Dict[str, Any]:
        return {"reconciled": self.reconciled, "counts": dict(self.counts), "differences": list(self.differences)}


@dataclass(frozen=True)
class DaySummary:
    day: dt.date
    files: Tuple[DayFile, ...] = ()
    session: Optional[WorkSession] = None
    mails_queued: int = 0
    mails_sent: int = 0
    no_file_alert: bool = False
    events: Tuple[Event, ...] = field(default=(), compare=False)

    @property
    def file(self) -> Optional[DayFile]:
        """The day's file: the imported one, else the last one received."""
        for candidate in self.files:
            if candidate.status is FileStatus.IMPORTED:
                return candidate
        return self.files[-1] if self.files else None

    @property
    def rejected(self) -> List[DayFile]:
        return [f for f in self.files if f.status is FileStatus.REJECTED]

    @property
    def state(self) -> str:
        """The coloured state of the row: the session's, else what the day had."""
        if self.session is not None:
            return self.session.state.value
        if self.rejected:
            return "rejected"
        if self.no_file_alert:
            return "no-file"
        if self.files:
            return "set-aside"
        return "none"

    @property
    def confirmed_at(self) -> Optional[dt.datetime]:
        # A session completes only on the consumer's confirmation of exactly the lines written.
        if self.session is not None and self.session.state is SessionState.COMPLETED:
            return self.session.finished_at
        return None

    def reconciliation(self) -> Reconciliation:
        imported = self.file if self.file is not None and self.file.status is FileStatus.IMPORTED else None
        counts: Dict[str, Optional[int]] = dict.fromkeys(
            ("file_lines", "stored", "ignored", "valid", "exported", "confirmed")
        )
        if imported is None:
            return Reconciliation(None, counts)
        counts["file_lines"] = imported.lines
        if imported.counts is not None:
            counts.update(stored=imported.counts.stored, ignored=imported.counts.ignored, valid=imported.counts.valid)
        session = self.session
        started = session is not None and session.started_at is not None
        if session is not None and started:
            counts.update(valid=session.total, exported=session.processed)
        elif session is not None:
            counts["exported"] = 0
        if self.confirmed_at is not None and session is not None:
            counts["confirmed"] = session.processed
        differences: List[str] = []
        unknown = imported.counts is None
        if not unknown and counts["file_lines"] != imported.counts.stored + imported.counts.ignored:  # type: ignore[union-attr]
            differences.append("file_lines")
        if session is not None and session.state in FINAL_STATES:
            if counts["valid"] is None:
                unknown = True
            elif counts["valid"] != counts["exported"]:
                differences.append("exported")
            if counts["confirmed"] != counts["exported"] or counts["confirmed"] is None:
                differences.append("confirmed")
        if differences:
            return Reconciliation(False, counts, tuple(differences))
        return Reconciliation(None if unknown else True, counts)

    def as_dict(self) -> Dict[str, Any]:
        """A row of GET /api/days (SPEC §7), with the reconciliation."""
        main = self.file
        counts = main.counts if main is not None else None
        session = self.session
        row: Dict[str, Any] = {
            "day": self.day.isoformat(),
            "state": self.state,
            "file": main.name if main else None,
            "received_at": main.received_at.isoformat() if main else None,
            "stored": counts.stored if counts else None,
            "ignored": counts.ignored if counts else None,
            "not_found": counts.not_found if counts else None,
            "export_file": session.export_file if session else None,
            "delivery": session.delivery.value if session is not None and session.delivery is not None else None,
            "confirmed_at": self.confirmed_at.isoformat() if self.confirmed_at else None,
            "mails": self.mails_sent,
            "mails_queued": self.mails_queued,
        }
        row.update(self.reconciliation().as_dict())
        return row
