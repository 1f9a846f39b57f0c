"""The day's timeline and the audit trail: what happened, when, by whom (SPEC §7, the event table)."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

# The actor of the steps nobody pressed a button for: scheduled polls, the session worker, mail.
SYSTEM = "system"


class EventKind(str, enum.Enum):
    FILE_SEEN = "file-seen"
    FILE_INCOMPLETE = "file-incomplete"
    FILE_DOWNLOADED = "file-downloaded"
    FILE_ARCHIVED = "file-archived"
    FILE_IMPORTED = "file-imported"
    FILE_REJECTED = "file-rejected"
    FILE_SET_ASIDE = "file-set-aside"
    FILE_DELETED = "file-deleted"
    MAIL_QUEUED = "mail-queued"
    MAIL_SENT = "mail-sent"
    MAIL_FAILED = "mail-failed"
    SESSION_STARTED = "session-started"
    SESSION_PROGRESS = "session-progress"
    SESSION_UPLOADED = "session-uploaded"
    SESSION_CONFIRMED = "session-confirmed"
    SESSION_FAILED = "session-failed"
    SESSION_CLOSED = "session-closed"
    SESSION_RETRIED = "session-retried"
    # The outbound server said whether a day's file, its delivery unknown, reached the consumer.
    DELIVERY_SETTLED = "delivery-settled"
    ARCHIVE_DELETED = "archive-deleted"
    EXPORT_DELETED = "export-deleted"


@dataclass(frozen=True)
class Event:
    """One line of a day's timeline. ``detail`` holds plain JSON values only."""

    day: dt.date
    kind: EventKind
    at: dt.datetime
    actor: str = SYSTEM
    detail: Dict[str, Any] = field(default_factory=dict)
    id: Optional[int] = None

    def as_dict(self) -> Dict[str, Any]:
        return {"at": self.at.isoformat(), "kind": self.kind.value, "actor": self.actor, "detail": dict(self.detail)}


def operator_actor(login: Optional[str], address: Optional[str]) -> str:
    """The login name, else ``anonymous@<address>`` (SPEC §7)."""
    if login:
        return login
    return "anonymous@{}".format(address or "unknown")


def cli_actor(os_user: str) -> str:
    """An ops command run from the shell by ``os_user`` (SPEC §7)."""
    return "cli:{}".format(os_user or "unknown")
