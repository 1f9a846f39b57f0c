"""DeliverOutbox: hand waiting mails to SMTP, oldest first, each marked sent in its own transaction."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from warehouse_core.audit import Event, EventKind
from warehouse_core.errors import MailDeliveryError
from warehouse_core.ports import Mailer, Transactions
from warehouse_core.usecases.mails import OutboxWithEvents

log = logging.getLogger(__name__)
MAX_BACKOFF = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Delivery:
    sent: int
    failed: int


def retry_delay(attempts: int) -> dt.timedelta:
    """1, 2, 4, … minutes after each failed attempt, at most an hour."""
    return min(dt.timedelta(minutes=2 ** min(attempts, 10)), MAX_BACKOFF)


class DeliverOutbox:
    def __init__(self, *, store: Transactions[OutboxWithEvents], mailer: Mailer) -> None:
        self.store = store
        self.mailer = mailer

    def __call__(self, now: dt.datetime, limit: int = 1000) -> Delivery:
        sent = failed = 0
        while sent < limit:
            with self.store.unit_of_work() as uow:
                mail = uow.claim_due_mail(now)
                if mail is None or mail.id is None:
                    break
                try:
                    self.mailer.send(mail)
                except MailDeliveryError as error:
                    retry_at = now + retry_delay(mail.attempts)
                    uow.mark_mail_failed(mail.id, str(error), retry_at)
                    uow.record_event(Event(mail.day, EventKind.MAIL_FAILED, now, detail={
                        "event": mail.event.value, "error": str(error), "retry_at": retry_at.isoformat(),
                    }))
                    log.warning(
                        "mail %s (%s) not delivered: %s; next try at %s",
                        mail.id, mail.event.value, error, retry_at.isoformat(timespec="minutes"),
                    )
                    failed += 1
                    break  # SMTP is down: the other mails wait for the next round
                uow.mark_mail_sent(mail.id, now)
                uow.record_event(Event(mail.day, EventKind.MAIL_SENT, now, detail={
                    "event": mail.event.value, "subject": mail.subject,
                }))
                log.info("mail %s (%s) delivered: %s", mail.id, mail.event.value, mail.subject)
                sent += 1
        return Delivery(sent=sent, failed=failed)
