from __future__ import annotations

from typing import Any, Mapping, Protocol, Tuple

from warehouse_core.model import Mail, MailEvent


class MailRenderer(Protocol):
    def render(self, event: MailEvent, context: Mapping[str, Any]) -> Tuple[str, str, str]:
        """Subject, plain text and HTML of the event's mail."""


class Mailer(Protocol):
    def send(self, mail: Mail) -> None:
        """Hand the mail to SMTP; MailDeliveryError when it was not taken."""
