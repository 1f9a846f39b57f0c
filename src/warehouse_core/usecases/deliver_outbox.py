"""DeliverOutbox: hand waiting mails to SMTP, oldest first, each marked sent in its own transaction.

Delivery is at least once (SPEC §6): a mail that fails, for any reason, counts an attempt and
backs off, so that it never stands in front of the mails queued after it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from warehouse_core.audit import Event, EventKind
from warehouse_core.errors import WarehouseError, one_line
from warehouse_core.ports import Mailer, Transactions
from warehouse_core.usecases.mails import OutboxWithEvents

log = logging.getLogger(__name__)
MAX_BACKOFF = dt.timedelta(hours=1)
# Failures in a row after which the round ends: SMTP is most likely down, and every further mail
# would wait for its own connect timeout. One mail that fails alone does not end the round.
FAILURES_ENDING_A_ROUND = 2


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
        sent = failed = failures_in_a_row = 0
        while sent + failed < limit and failures_in_a_row < FAILURES_ENDING_A_ROUND:
            with self.store.unit_of_work() as uow:
                mail = uow.claim_due_mail(now)
                if mail is None or mail.id is None:
                    break
                try:
                    self.mailer.send(mail)
                except Exception as error:  # any failure: a refused mail, a bug, a header SMTP rejects
                    retry_at = _later(now, retry_delay(mail.attempts))
                    uow.mark_mail_failed(mail.id, one_line(error), retry_at)
                    uow.record_event(
                        Event(
                            mail.day,
                            EventKind.MAIL_FAILED,
                            now,
                            detail={
                                "event": mail.event.value,
                                "error": one_line(error),
                                "retry_at": retry_at.isoformat(),
                            },
                        )
                    )
                    log.warning(
                        "mail %s (%s) not delivered: %s; next try at %s",
                        mail.id,
                        mail.event.value,
                        one_line(error),
                        retry_at.isoformat(timespec="minutes"),
                        exc_info=not isinstance(error, WarehouseError),
                    )
                    failed += 1
                    failures_in_a_row += 1
                    continue
                uow.mark_mail_sent(mail.id, now)
                uow.record_event(
                    Event(
                        mail.day,
                        EventKind.MAIL_SENT,
                        now,
                        detail={
                            "event": mail.event.value,
                            "subject": mail.subject,
                        },
                    )
                )
                log.info("mail %s (%s) delivered: %s", mail.id, mail.event.value, mail.subject)
                sent += 1
                failures_in_a_row = 0
        return Delivery(sent=sent, failed=failed)


def _later(now: dt.datetime, delay: dt.timedelta) -> dt.datetime:
    """``now + delay`` in elapsed time: aware arithmetic in one zone is wall-clock arithmetic, which
    is an hour off across a daylight-saving change."""
    if now.tzinfo is None:
        return now + delay
    return (now.astimezone(dt.timezone.utc) + delay).astimezone(now.tzinfo)
