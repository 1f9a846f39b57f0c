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
        store=store, inbound=FakeInbound(), archive=FakeArchive(), mailer=FakeMailer(),
        clock=FakeClock(at("2026-11-26T19:00")),
    )
    core.ingest_daily_file(at("2026-11-26T19:00"))
    [mail] = store.mails("no-file")
    assert mail.subject == "Nessun file per il 2026-11-26"
    assert "No <code>Letture</code> file" in mail.html  # the parts not replaced stay built-in
