"""Mail through smtplib: smtp://, smtps:// and smtp://…?starttls=true, with a timeout."""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Callable, Optional, Sequence

from warehouse_core.endpoints import SmtpEndpoint
from warehouse_core.errors import MailDeliveryError
from warehouse_core.model import Mail

EVENT_HEADER = "X-Warehouse-Event"
log = logging.getLogger(__name__)


def build_message(mail: Mail, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """The MIME message: plain text with an HTML alternative, the attachments and the event header."""
    message = EmailMessage()
    message["Subject"] = mail.subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = message_id(mail, sender)
    message[EVENT_HEADER] = mail.event.value
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    for attachment in mail.attachments:  # the whole invoice list (SPEC §6): multipart/mixed
        subtype = attachment.media_type.partition("/")[2]  # a text type: the content is text
        message.add_attachment(attachment.content, subtype=subtype, filename=attachment.name)
    return message


def message_id(mail: Mail, sender: str) -> str:
    """The same outbox row always gets the same Message-ID, so that a resend after a crash is
    folded by mail clients; the digest of its content keeps two different mails apart even when
    an outbox id is reused (a database rebuilt the same day)."""
    digest = hashlib.sha256(
        "\n".join((mail.event.value, mail.day.isoformat(), mail.subject, mail.text)).encode("utf-8")
    ).hexdigest()[:16]
    return "<warehouse-outbox-{}-{}-{}@{}>".format(
        mail.id, mail.day.isoformat(), digest, sender.rpartition("@")[2] or "localhost"
    )


class SmtpMailer:
    def __init__(
        self,
        endpoint: SmtpEndpoint,
        sender: str,
        recipients: Sequence[str],
        timeout: float = 30.0,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.implicit_tls = endpoint.implicit_tls
        self.starttls = endpoint.starttls
        self.host = endpoint.host
        self.port = endpoint.port
        self.user = endpoint.user
        self.password = endpoint.password
        self.sender = sender
        self.recipients = list(recipients)
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()

    def send(self, mail: Mail) -> None:
        message = build_message(mail, self.sender, self.recipients)
        self._session(lambda client: client.send_message(message, from_addr=self.sender, to_addrs=self.recipients))

    def check(self) -> None:
        """Connect, secure and log in as ``send`` does, then NOOP: no mail is sent."""
        self._session(lambda client: client.noop())

    def _session(self, work: Callable[[smtplib.SMTP], object]) -> None:
        """Connect, secure, log in and do ``work``; any failure up to there is a MailDeliveryError.

        QUIT comes after: once the server has answered 250 to DATA it has the mail, and an error at
        QUIT cannot undo that. Taking it for a failure would count an attempt and send the mail
        again (SPEC §6), so it is only logged.
        """
        try:
            client = self._connect()
            try:
                if self.starttls:
                    client.starttls(context=self.ssl_context)
                if self.user:
                    client.login(self.user, self.password)
                work(client)
            except BaseException:
                client.close()
                raise
        except (smtplib.SMTPException, OSError) as error:
            raise MailDeliveryError("SMTP {}:{}: {}".format(self.host, self.port, _reason(error))) from None
        try:
            code, _ = client.quit()
        except (smtplib.SMTPException, OSError) as error:
            log.warning(
                "SMTP %s:%s: QUIT failed after the server had answered: %s", self.host, self.port, _reason(error)
            )
            client.close()
            return
        if code != 221:
            log.warning("SMTP %s:%s answered QUIT with %s after the server had answered", self.host, self.port, code)

    def _connect(self) -> smtplib.SMTP:
        if self.implicit_tls:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.ssl_context)
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)


def _reason(error: Exception) -> str:
    # SMTPAuthenticationError and friends carry (code, bytes); never the password.
    if isinstance(error, smtplib.SMTPResponseException):
        detail = error.smtp_error
        text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else detail
        return "{} {}".format(error.smtp_code, text)
    return "{}: {}".format(type(error).__name__, error)
