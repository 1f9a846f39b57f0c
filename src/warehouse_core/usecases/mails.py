"""Rendering a mail for the outbox."""
from __future__ import annotations

import datetime as dt
from typing import Any

from warehouse_core.model import Mail, MailEvent
from warehouse_core.ports import MailRenderer


def compose(renderer: MailRenderer, event: MailEvent, day: dt.date, **context: Any) -> Mail:
    subject, text, html = renderer.render(event, dict(context, day=day, event=event.value))
    return Mail(event=event, day=day, subject=subject, text=text, html=html)
