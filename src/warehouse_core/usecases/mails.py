"""Rendering a mail for the outbox, and queuing it with the event that says so."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Optional, Protocol

from warehouse_core.audit import SYSTEM, Event, EventKind
from warehouse_core.errors import one_line
from warehouse_core.model import Mail, MailEvent
from warehouse_core.ports import Events, MailRenderer, Outbox

log = logging.getLogger(__name__)


def compose(renderer: MailRenderer, event: MailEvent, day: dt.date, **context: Any) -> Mail:
    """The mail of the event. A template that cannot be rendered (a customer's typo, met months
    later at the first such event) never stops what the mail reports (SPEC §5 "The failure path
    cannot fail"): the built-in template is used instead, and the mail says so."""
    values = dict(context, day=day, event=event.value)
    try:
        subject, text, html = renderer.render(event, values)
    except Exception as error:
        log.exception(
            "the %s mail of %s: its template could not be rendered; the built-in one is used", event.value, day
        )
        subject, text, html = renderer.render(event, dict(values, template_error=one_line(error)), built_in=True)
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
