"""The outbox role on PostgreSQL: mails written with the change they report, claimed one at a time."""

from __future__ import annotations

import datetime as dt
from typing import Optional

from warehouse_core.adapters.postgres.connected import Connected
from warehouse_core.model import Attachment, Mail, MailEvent


class PsycopgOutbox(Connected):
    def enqueue_mail(self, mail: Mail, once_key: Optional[str] = None, queued_at: Optional[dt.datetime] = None) -> bool:
        row = self._one(
            "INSERT INTO mail_outbox (event, day, subject, body_text, body_html, once_key, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s, now())) ON CONFLICT (once_key) DO NOTHING RETURNING id",
            (mail.event.value, mail.day, mail.subject, mail.text, mail.html, once_key, queued_at),
        )
        if row is None:
            return False
        for ordinal, attachment in enumerate(mail.attachments):
            self.connection.execute(
                "INSERT INTO mail_attachment (mail_id, ordinal, name, media_type, content) VALUES (%s, %s, %s, %s, %s)",
                (row[0], ordinal, attachment.name, attachment.media_type, attachment.content),
            )
        return True

    def claim_due_mail(self, now: dt.datetime) -> Optional[Mail]:
        row = self._one(
            "SELECT id, event, day, subject, body_text, body_html, attempts FROM mail_outbox"
            " WHERE sent_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= %s)"
            " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
            (now,),
        )
        if row is None:
            return None
        attachments = tuple(
            Attachment(name=name, media_type=media_type, content=content)
            for name, media_type, content in self.connection.execute(
                "SELECT name, media_type, content FROM mail_attachment WHERE mail_id = %s ORDER BY ordinal", (row[0],)
            ).fetchall()
        )
        return Mail(
            id=row[0],
            event=MailEvent(row[1]),
            day=row[2],
            subject=row[3],
            text=row[4],
            html=row[5],
            attempts=row[6],
            attachments=attachments,
        )

    def mark_mail_sent(self, mail_id: int, now: dt.datetime) -> None:
        self.connection.execute(
            "UPDATE mail_outbox SET sent_at = %s, attempts = attempts + 1, last_error = NULL WHERE id = %s",
            (now, mail_id),
        )

    def mark_mail_failed(self, mail_id: int, error: str, retry_at: dt.datetime) -> None:
        self.connection.execute(
            "UPDATE mail_outbox SET attempts = attempts + 1, last_error = %s, next_attempt_at = %s WHERE id = %s",
            (error, retry_at, mail_id),
        )
