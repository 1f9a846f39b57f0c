"""SPEC §6: a mail lists at most 200 invoices in its body; the whole list goes with it as a CSV
attachment, so that a big day's mail is never refused by the relay for its size (issue 20: an
import of 300 invoices not found put all 300 in both bodies, with no attachment)."""

from __future__ import annotations

import csv
import io
import re

from tests.conftest import VALID_SAMPLE
from warehouse_core.model import Mail, MailEvent
from warehouse_core.usecases.mails import LISTED_IN_BODY, compose

# Nine sample lines (six invoices in the view, two not found) and 300 invoices the view does not know.
MISSING = ["6{:08d}".format(70000000 + i) for i in range(300)]


def big_file(missing=MISSING):
    sample = VALID_SAMPLE.read_bytes().rstrip(b"\n").split(b"\n")
    lines = sample + ["{}|1|Pane|1.00".format(number).encode() for number in missing]
    return "Letture20261126083015123_{}.txt".format(len(lines) - 1), b"\n".join(lines) + b"\n"


def listed(body):
    return set(re.findall(r"\b6\d{8}\b", body))


def attached_rows(mail: Mail):
    [attachment] = mail.attachments
    assert (attachment.name, attachment.media_type) == ("invoices.csv", "text/csv")
    return list(csv.reader(io.StringIO(attachment.content)))


def test_an_import_of_300_invoices_not_found_lists_200_in_the_body_and_all_in_invoices_csv(world):
    name, data = big_file()
    world.inbound.files[name] = data
    world.poll("2026-11-26T10:00")
    world.deliver()
    [mail] = world.mailer.sent
    assert mail.event is MailEvent.IMPORT_SUMMARY
    for body in (mail.text, mail.html):
        assert len(listed(body)) == LISTED_IN_BODY == 200
        assert "(302)" in body, "the count is the whole list's"
        assert "and 102 more, see the attachment invoices.csv" in body
    rows = attached_rows(mail)
    assert rows[0] == ["invoice", "list"]
    assert {row[0] for row in rows[1:]} == set(MISSING) | {"600000004", "600000099"}
    assert {row[1] for row in rows[1:]} == {"not_found"}
    assert len(rows) == 1 + 302


def test_a_session_completed_with_300_invoices_not_present_lists_200_and_attaches_all(world):
    name, data = big_file()
    world.inbound.files[name] = data
    world.poll("2026-11-26T10:00")
    world.importer_confirms()
    world.core.start_session(world.clock.now())
    assert world.work() == 1
    [mail] = world.store.mails("session-completed")
    for body in (mail.text, mail.html):
        assert len(listed(body)) == 200 and "and 102 more, see the attachment invoices.csv" in body
    rows = attached_rows(mail)
    assert len(rows) == 1 + 302
    assert {row[1] for row in rows[1:]} == {"not_present"}


def test_a_mail_that_lists_every_invoice_has_no_attachment(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    [mail] = world.store.mails("import-summary")
    assert "600000004" in mail.text and "600000099" in mail.html
    assert "more, see the attachment" not in mail.text and mail.attachments == ()


def test_the_body_stays_the_same_size_however_many_invoices_the_attachment_carries(world):
    def mail_for(count):
        missing = ["6{:08d}".format(10000000 + i) for i in range(count)]
        return compose(
            world.core.ingest_daily_file.renderer,
            MailEvent.SESSION_COMPLETED,
            world.clock.now().date(),
            invoices={"not_present": missing},
            session=world.core.session_status(),
        )

    small, big = mail_for(300), mail_for(30000)
    assert abs(len(big.text) - len(small.text)) < 10 and abs(len(big.html) - len(small.html)) < 10
    assert len(attached_rows(big)) == 30001


def test_invoices_csv_cannot_smuggle_a_formula_into_a_spreadsheet(world):
    mail = compose(
        world.core.ingest_daily_file.renderer,
        MailEvent.SESSION_COMPLETED,
        world.clock.now().date(),
        invoices={"not_present": ['=HYPERLINK("http://x")'] + ["6{:08d}".format(i) for i in range(200)]},
        session=world.core.session_status(),
    )
    rows = attached_rows(mail)
    assert rows[1][0] == '\'=HYPERLINK("http://x")'
