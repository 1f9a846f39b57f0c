"""Values of the domain: file names, invoice lines, states, mails."""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

# Their home is delivery_states, with every other state of a delivery; imported from here as well.
from warehouse_core.delivery_states import Delivery as Delivery
from warehouse_core.delivery_states import SessionPhase as SessionPhase

# Matched whole (fullmatch: '$' would let a trailing newline through) and in ASCII: '\d' alone
# also takes other scripts' digits.
INBOUND_NAME = re.compile(r"Letture(\d{17})_(\d+)\.txt", re.ASCII)
_UNSAFE_IN_NAMES = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_name(name: str, limit: int = 160) -> str:
    """The base name with anything but letters, digits, '.', '_' and '-' replaced and no leading dot:
    a name that cannot leave its folder, whatever a server or a browser sent. May be empty."""
    base = name.replace("\\", "/").split("/")[-1]
    return _UNSAFE_IN_NAMES.sub("_", base).lstrip(".")[:limit]


@dataclass(frozen=True)
class InboundFileName:
    """A name of the form ``Letture<YYYYMMDDHHMMSSmmm>_<N>.txt``."""

    name: str
    created: str
    declared_count: int

    @classmethod
    def parse(cls, name: str) -> Optional["InboundFileName"]:
        """The parsed name, or None when the name is not one of ours."""
        match = INBOUND_NAME.fullmatch(name)
        if match is None:
            return None
        return cls(name=name, created=match.group(1), declared_count=int(match.group(2)))

    @property
    def day(self) -> Optional[dt.date]:
        """The file's day (the first 8 digits), or None when they are no date."""
        try:
            return dt.datetime.strptime(self.created[:8], "%Y%m%d").date()
        except ValueError:
            return None

    @property
    def expected_lines(self) -> int:
        # The customer's system counts newlines and writes no final one.
        return self.declared_count + 1


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: Optional[int]


class InvoiceLine(NamedTuple):
    """A valid line of a file (a NamedTuple: a million of them are made per large file)."""

    line_number: int
    invoice_number: str
    quantity: int
    description: str
    value: Decimal
    categories: Tuple[str, ...]


@dataclass(frozen=True)
class Problem:
    line: int
    reason: str

    def as_dict(self) -> Dict[str, Any]:
        return {"line": self.line, "reason": self.reason}


class FileStatus(str, enum.Enum):
    IMPORTED = "imported"
    REJECTED = "rejected"
    EXTRA = "extra"


class FileSource(str, enum.Enum):
    FTP = "ftp"
    UPLOAD = "upload"


class InvoiceStatus(str, enum.Enum):
    VALID = "valid"
    NOT_FOUND = "not_found"
    ALREADY_EXPORTED = "already_exported"


class SessionState(str, enum.Enum):
    NONE = "none"
    READY = "ready"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CLOSED = "closed"


class MailEvent(str, enum.Enum):
    NO_FILE = "no-file"
    IMPORT_SUMMARY = "import-summary"
    IMPORT_FAILED = "import-failed"
    EXTRA_FILE = "extra-file"
    SESSION_COMPLETED = "session-completed"
    SESSION_FAILED = "session-failed"
    SESSION_RETRY = "session-retry"


@dataclass(frozen=True)
class InboundFileRecord:
    """What the database knows of one received file."""

    name: str
    day: dt.date
    source: FileSource
    sha256: str
    declared_count: Optional[int]
    actual_lines: int
    status: FileStatus
    reasons: Tuple[Problem, ...] = ()
    archive_path: str = ""
    id: Optional[int] = None
    received_at: Optional[dt.datetime] = None


@dataclass(frozen=True)
class StoredLines:
    """What inserting a file's lines stored, and what the invoice lookup found: the invoices in
    each unusual status, and how many lines carry them."""

    stored: int
    not_found: Tuple[str, ...]
    already_exported: Tuple[str, ...]
    not_found_lines: int = 0
    already_exported_lines: int = 0


@dataclass(frozen=True)
class Attachment:
    """A text file that goes with a mail (invoices.csv), kept in the outbox with it;
    ``media_type`` is a text type (``text/csv``)."""

    name: str
    media_type: str
    content: str


@dataclass(frozen=True)
class Mail:
    """A rendered mail, as it waits in the outbox."""

    event: MailEvent
    day: dt.date
    subject: str
    text: str
    html: str
    id: Optional[int] = None
    attempts: int = 0
    attachments: Tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class ImportSummary:
    file_name: str
    day: dt.date
    status: FileStatus
    total_lines: int
    stored_lines: int
    ignored_lines: int
    not_found: Tuple[str, ...] = ()
    problems: Tuple[Problem, ...] = ()
    problem_count: int = 0

    def as_dict(self) -> Dict[str, Any]:
        return {
            "file": self.file_name,
            "day": self.day.isoformat(),
            "status": self.status.value,
            "total_lines": self.total_lines,
            "stored_lines": self.stored_lines,
            "ignored_lines": self.ignored_lines,
            "not_found": list(self.not_found),
            "problems": [p.as_dict() for p in self.problems],
            "problem_count": self.problem_count,
        }


@dataclass
class PollReport:
    """What one poll did, for the log and the command line."""

    at: dt.datetime
    skipped: Optional[str] = None
    imported: List[str] = field(default_factory=list)
    rejected: List[str] = field(default_factory=list)
    extra: List[str] = field(default_factory=list)
    deleted: List[str] = field(default_factory=list)
    incomplete: List[str] = field(default_factory=list)
    other_days: List[str] = field(default_factory=list)
    # "name: error" for each file whose work an unexpected error ended (the file stays on the server).
    failed: List[str] = field(default_factory=list)
    no_file_alert: bool = False
    # The no-file alert check waits for a poll another process has just started (it may be
    # importing today's file): the scheduler asks again at its next ticks (check_alert).
    alert_deferred: bool = False
    # Why the inbound server could not be read (logon refused, unreachable, a transfer failed).
    server_error: Optional[str] = None

    def describe(self) -> str:
        if self.skipped:
            return "poll at {}: skipped ({})".format(self.at.isoformat(timespec="minutes"), self.skipped)
        parts = []
        if self.server_error:
            parts.append("the inbound server could not be read: {}".format(self.server_error))
        for label, names in (
            ("imported", self.imported),
            ("rejected", self.rejected),
            ("set aside", self.extra),
            ("deleted", self.deleted),
            ("incomplete", self.incomplete),
            ("other days", self.other_days),
            ("failed", self.failed),
        ):
            if names:
                parts.append("{}: {}".format(label, ", ".join(names)))
        if self.no_file_alert:
            parts.append("no-file alert queued")
        return "poll at {}: {}".format(self.at.isoformat(timespec="minutes"), "; ".join(parts) or "nothing to do")


@dataclass(frozen=True)
class WorkSession:
    day: dt.date
    state: SessionState
    total: int = 0
    processed: int = 0
    phase: Optional[SessionPhase] = None
    started_at: Optional[dt.datetime] = None
    finished_at: Optional[dt.datetime] = None
    export_file: Optional[str] = None
    detail: Optional[str] = None
    # Tries of the worker, counted durably (SPEC §5): a worker that dies every time stops at last.
    tries: int = 0
    # Whether the export reached the consumer (delivery_states); None until a rename was asked for.
    delivery: Optional[Delivery] = None
    # Where each remote log ended when the rename was asked for (usecases/day_logs); None: unknown.
    log_positions: Optional[Dict[str, int]] = None

    def as_dict(self) -> Dict[str, Any]:
        """The status object of the HTTP API, less its message."""
        return {
            "day": self.day.isoformat(),
            "state": self.state.value,
            "processed": self.processed,
            "total": self.total,
            "export_file": self.export_file,
            "detail": self.detail,
            "delivery": self.delivery.value if self.delivery is not None else None,
        }
