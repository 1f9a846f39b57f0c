"""Rendering a mail for the outbox, and queuing it with the event that says so."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional, Protocol

from warehouse_core.audit import SYSTEM, Event, EventKind
from warehouse_core.model import Mail, MailEvent
from warehouse_core.ports import Events, MailRenderer, Outbox


def compose(renderer: MailRenderer, event: MailEvent, day: dt.date, **context: Any) -> Mail:
    subject, text, html = renderer.render(event, dict(context, day=day, event=event.value))
    return Mail(event=event, day=day, subject=subject, text=text, html=html)


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
