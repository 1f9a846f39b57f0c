"""The Mailer port: the fake, and smtplib against aiosmtpd in clear, over SMTPS and with STARTTLS."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tests.fakes import FakeMailer
from warehouse_core.adapters.smtp_mailer import EVENT_HEADER, SmtpMailer
from warehouse_core.endpoints import SmtpEndpoint
from warehouse_core.errors import MailDeliveryError
from warehouse_core.model import Mail, MailEvent
from warehouse_devstack.servers import body_text, free_port

MAIL = Mail(
    id=7,
    event=MailEvent.IMPORT_SUMMARY,
    day=dt.date(2026, 11, 26),
    subject="Invoice file imported: 8 lines – àèì",
    text="Lines stored: 8\nInvoices not found: 600000004",
    html="<p>Lines stored: <b>8</b></p>",
)


class FakeSide:
    def __init__(self) -> None:
        self.mailer = FakeMailer()

    def received(self):
        return [(m.event.value, m.subject, m.text) for m in self.mailer.sent]

    def delivered(self):
        """(text, html, [(name, media type, content)], size in bytes) of each mail sent."""
        return [
            (
                m.text,
                m.html,
                [(a.name, a.media_type, a.content) for a in m.attachments],
                len((m.text + m.html + "".join(a.content for a in m.attachments)).encode("utf-8")),
            )
            for m in self.mailer.sent
        ]

    def stop(self) -> None:
        self.mailer.down = True


class SmtpSide:
    def __init__(self, server, tls_context=None) -> None:
        self.server = server
        self.mailer = SmtpMailer(
            SmtpEndpoint.parse(server.url()),
            "warehouse@example.com",
            ["ops@example.com", "boss@example.com"],
            timeout=5,
            ssl_context=tls_context,
        )

    def received(self):
        return [
            (m[EVENT_HEADER], m["Subject"], body_text(m).replace("\r\n", "\n").strip()) for m in self.server.messages
        ]

    def delivered(self):
        """(text, html, [(name, media type, content)], size in bytes) of each message received."""
        return [
            (
                body_text(m),
                m.get_body(preferencelist=("html",)).get_content(),
                [(a.get_filename(), a.get_content_type(), a.get_content()) for a in m.iter_attachments()],
                len(m.as_bytes()),
            )
            for m in self.server.messages
        ]

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(params=["fake", "smtp", "smtps", "starttls"])
def side(request):
    if request.param == "fake":
        return FakeSide()
    if request.param == "smtp":
        return SmtpSide(request.getfixturevalue("smtp_server"))
    server = request.getfixturevalue(request.param + "_server")
    return SmtpSide(server, request.getfixturevalue("client_tls_context"))


def test_a_sent_mail_arrives_with_its_event_subject_and_text(side):
    side.mailer.send(MAIL)
    assert side.received() == [("import-summary", MAIL.subject, MAIL.text)]


def test_a_server_that_is_down_raises_mail_delivery_error(side):
    side.stop()
    with pytest.raises(MailDeliveryError):
        side.mailer.send(MAIL)


def test_smtp_message_has_html_alternative_recipients_and_a_stable_message_id(smtp_server):
    mailer = SmtpMailer(
        SmtpEndpoint.parse(smtp_server.url()),
        "warehouse@example.com",
        ["ops@example.com", "boss@example.com"],
        timeout=5,
    )
    mailer.send(MAIL)
    [message] = smtp_server.messages
    assert message.get_body(preferencelist=("html",)).get_content().strip() == MAIL.html
    assert smtp_server.recipients == [["ops@example.com", "boss@example.com"]]
    assert re.fullmatch(r"<warehouse-outbox-7-2026-11-26-[0-9a-f]{16}@example\.com>", message["Message-ID"])
    assert message["From"] == "warehouse@example.com"


def test_nobody_listening_fails_fast():
    mailer = SmtpMailer(
        SmtpEndpoint.parse("smtp://127.0.0.1:{}".format(free_port())), "a@example.com", ["b@example.com"], timeout=2
    )
    with pytest.raises(MailDeliveryError, match="SMTP 127.0.0.1"):
        mailer.send(MAIL)


def test_a_mail_sent_again_carries_the_same_message_id_and_another_mail_another(smtp_server):
    """At-least-once delivery (SPEC §6): a resend after a crash is folded by the reader's client,
    and a different mail is never taken for a resend, even one that reuses an outbox id (a
    database rebuilt the same day)."""
    from dataclasses import replace

    mailer = SmtpMailer(SmtpEndpoint.parse(smtp_server.url()), "warehouse@example.com", ["ops@example.com"], timeout=5)
    mailer.send(MAIL)
    mailer.send(MAIL)
    mailer.send(replace(MAIL, subject="Invoice file rejected", text="line 3: malformed"))
    ids = [message["Message-ID"] for message in smtp_server.messages]
    assert ids[0] == ids[1] and ids[2] != ids[0]
    assert all(i.startswith("<") and i.endswith("@example.com>") for i in ids)


@pytest.mark.parametrize("quit_reply", ["421 4.3.0 shutting down", "500 what?"])
def test_an_error_at_quit_after_the_server_took_the_mail_is_not_a_failure(smtp_server, quit_reply):
    """The server said 250 after DATA: it has the mail. A QUIT that then fails cannot undo that,
    and taking it for a failure would count an attempt and send the mail again (SPEC §6)."""
    smtp_server.quit_reply = quit_reply
    mailer = SmtpMailer(SmtpEndpoint.parse(smtp_server.url()), "warehouse@example.com", ["ops@example.com"], timeout=5)
    mailer.send(MAIL)
    assert len(smtp_server.messages) == 1
    mailer.check()  # the same for the check's NOOP: the server answered it


def big_mail():
    """A 300-invoice import summary as the service composes it: 200 in the body, all in invoices.csv."""
    from warehouse_core.adapters.jinja_mail import JinjaMailRenderer
    from warehouse_core.model import FileStatus, ImportSummary
    from warehouse_core.usecases.mails import compose

    missing = tuple("6{:08d}".format(70000000 + i) for i in range(300))
    summary = ImportSummary(
        file_name="Letture20261126083015123_300.txt",
        day=dt.date(2026, 11, 26),
        status=FileStatus.IMPORTED,
        total_lines=300,
        stored_lines=300,
        ignored_lines=0,
        not_found=missing,
    )
    mail = compose(
        JinjaMailRenderer(),
        MailEvent.IMPORT_SUMMARY,
        summary.day,
        invoices={"not_found": missing, "already_exported": ()},
        summary=summary,
        source="ftp",
    )
    return replace_id(mail, 8), missing


def replace_id(mail, mail_id):
    from dataclasses import replace

    return replace(mail, id=mail_id)


def test_a_300_invoice_mail_lists_200_in_its_bodies_and_carries_all_300_in_invoices_csv(side):
    """SPEC §6, through every side of the port: the relay gets a bounded message, with the whole
    list attached (issue 20: all 300 went into both bodies, and a big day's mail grew past the
    relay's size limit)."""
    import csv
    import io

    mail, missing = big_mail()
    side.mailer.send(mail)
    [(text, html, attachments, size)] = side.delivered()
    for body in (text, html):
        assert len(set(re.findall(r"\b6\d{8}\b", body))) == 200
        assert "and 100 more, see the attachment invoices.csv" in body
    [(name, media_type, content)] = attachments
    assert (name, media_type) == ("invoices.csv", "text/csv")
    rows = list(csv.reader(io.StringIO(content)))
    assert rows[0] == ["invoice", "list"] and [row[0] for row in rows[1:]] == list(missing)
    assert size < 32 * 1024, "a 300-invoice day is a small message"
