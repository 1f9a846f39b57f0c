from __future__ import annotations

from typing import Any, Mapping, Protocol, Tuple

from warehouse_core.model import Mail, MailEvent


class MailRenderer(Protocol):
    def render(self, event: MailEvent, context: Mapping[str, Any], built_in: bool = False) -> Tuple[str, str, str]:
        """Subject, plain text and HTML of the event's mail. ``built_in``: from the built-in
        templates whatever the customer's folder holds; with ``template_error`` in the context,
        the mail first says that the customer's template failed, and why."""


class Mailer(Protocol):
    def send(self, mail: Mail) -> None:
        """Hand the mail to SMTP; MailDeliveryError when it was not taken."""
