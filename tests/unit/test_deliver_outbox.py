from __future__ import annotations

import datetime as dt

from tests.conftest import VALID_SAMPLE, at
from warehouse_core.usecases.deliver_outbox import retry_delay


def test_mails_wait_while_smtp_is_down_and_are_delivered_once_when_it_returns(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.mailer.down = True
    assert world.deliver().failed == 1
    [entry] = world.store.data.outbox
    assert entry.sent_at is None and entry.attempts == 1 and "refused" in entry.last_error
    world.mailer.down = False
    assert world.deliver().sent == 0  # not yet due again
    world.clock.set(at("2026-11-26T10:05"))
    assert world.deliver().sent == 1
    assert world.deliver().sent == 0
    assert world.mailer.events() == ["import-summary"]


def test_backoff_grows_and_is_capped():
    assert retry_delay(0) == dt.timedelta(minutes=1)
    assert retry_delay(3) == dt.timedelta(minutes=8)
    assert retry_delay(50) == dt.timedelta(hours=1)


def test_every_mail_is_rendered_with_text_and_html(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.deliver()
    [mail] = world.mailer.sent
    assert mail.subject.startswith("Invoice file " + VALID_SAMPLE.name)
    assert "<li>600000004</li>" in mail.html and "Lines stored:      8" in mail.text


def test_customer_templates_win_over_the_built_in_ones(make_settings, tmp_path):
    from tests.fakes import FakeArchive, FakeClock, FakeInbound, FakeMailer, FakeStore
    from warehouse_core.bootstrap import bootstrap

    folder = tmp_path / "templates" / "mail"
    folder.mkdir(parents=True)
    (folder / "no-file.subject.txt").write_text("Nessun file per il {{ day.isoformat() }}")
    store = FakeStore()
    core = bootstrap(
        make_settings(templates_dir=str(tmp_path / "templates")),
        store=store,
        inbound=FakeInbound(),
        archive=FakeArchive(),
        mailer=FakeMailer(),
        clock=FakeClock(at("2026-11-26T19:00")),
    )
    core.ingest_daily_file(at("2026-11-26T19:00"))
    [mail] = store.mails("no-file")
    assert mail.subject == "Nessun file per il 2026-11-26"
    assert "No <code>Letture</code> file" in mail.html  # the parts not replaced stay built-in


def _queue(world, count):
    from warehouse_core.model import Mail, MailEvent

    with world.store.unit_of_work() as uow:
        for number in range(1, count + 1):
            uow.enqueue_mail(
                Mail(
                    event=MailEvent.NO_FILE,
                    day=dt.date(2026, 11, 26),
                    subject="mail {}".format(number),
                    text="t",
                    html="h",
                )
            )


def test_a_mail_failing_with_any_error_counts_an_attempt_and_backs_off(world):
    _queue(world, 1)
    world.mailer.fail_mail(1, ValueError("header line contains a newline"))
    assert world.deliver().failed == 1
    [entry] = world.store.data.outbox
    assert entry.attempts == 1 and entry.sent_at is None and "newline" in entry.last_error
    assert entry.next_attempt_at == at("2026-11-26T10:01")


def test_one_failing_mail_never_blocks_the_mails_queued_after_it(world):
    _queue(world, 3)
    world.mailer.fail_mail(1, ValueError("cannot encode the subject"))
    delivery = world.deliver()
    assert (delivery.sent, delivery.failed) == (2, 1)
    assert [mail.subject for mail in world.mailer.sent] == ["mail 2", "mail 3"]


def test_a_mail_refused_by_smtp_never_blocks_the_mails_queued_after_it(world):
    from warehouse_core.errors import MailDeliveryError

    _queue(world, 3)
    world.mailer.fail_mail(1, MailDeliveryError("SMTP fake: 552 message size exceeds fixed limit"))
    delivery = world.deliver()
    assert (delivery.sent, delivery.failed) == (2, 1)
    assert [mail.subject for mail in world.mailer.sent] == ["mail 2", "mail 3"]


def test_while_smtp_is_down_a_round_stops_early_instead_of_trying_every_mail(world):
    _queue(world, 5)
    world.mailer.down = True
    assert world.deliver().failed == 2
    assert [entry.attempts for entry in world.store.data.outbox] == [1, 1, 0, 0, 0]


def test_the_backoff_is_elapsed_time_across_the_fall_back_night(world):
    """02:50 summer time + 32 minutes is 02:22 winter time, not 03:22 (an hour more)."""
    _queue(world, 1)
    world.store.data.outbox[0].attempts = 5
    world.mailer.down = True
    failed_at = at("2027-10-31T02:50")  # the first 02:50 of the night, summer time (fold=0)
    world.core.deliver_outbox(failed_at)
    retry_at = world.store.data.outbox[0].next_attempt_at
    assert retry_at.astimezone(dt.timezone.utc) - failed_at.astimezone(dt.timezone.utc) == dt.timedelta(minutes=32)
