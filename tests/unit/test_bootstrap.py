"""The composition root checks at start what only the database can tell (SPEC §8)."""

from __future__ import annotations

import pytest

from tests.conftest import SAMPLE_VIEW
from tests.fakes import FakeStore
from warehouse_core.bootstrap import bootstrap
from warehouse_core.errors import ConfigurationError


def test_export_columns_missing_from_the_view_stop_the_start_in_one_message(make_settings):
    settings = make_settings(export_columns="invoice_number,nope,customer_code,quantity,also_missing")
    with pytest.raises(ConfigurationError) as caught:
        bootstrap(settings, store=FakeStore(invoice_view=SAMPLE_VIEW))
    message = str(caught.value)
    assert "\n" not in message
    assert "WAREHOUSE_EXPORT_COLUMNS" in message and "public.invoice_view" in message
    assert "nope" in message and "also_missing" in message
    assert "customer_code" not in message and "quantity" not in message  # view and line columns are there


def test_a_view_without_the_imports_columns_stops_the_start(make_settings):
    store = FakeStore(invoice_view=SAMPLE_VIEW)
    store.view_lacks = {"invoice_date"}
    with pytest.raises(
        ConfigurationError, match="WAREHOUSE_INVOICE_VIEW .* lacks the columns the import needs: invoice_date"
    ):
        bootstrap(make_settings(export_columns="invoice_number,customer_code"), store=store)


def test_every_default_export_column_is_found(make_settings):
    assert bootstrap(make_settings(), store=FakeStore(invoice_view=SAMPLE_VIEW)).settings.export_columns


def test_the_database_connect_timeout_is_short_and_not_the_ftp_timeout(make_settings):
    """SPEC §10: with the database host silent, pages answer 503 within the connect timeout. The FTP
    timeout (30 s by default, for slow transfers) would hold /healthz and every page that long."""
    from warehouse_core.bootstrap import DATABASE_CONNECT_TIMEOUT_SECONDS

    core = bootstrap(make_settings(ftp_timeout=30), migrate=False, check_view=False)
    try:
        assert core.store.connect_timeout == DATABASE_CONNECT_TIMEOUT_SECONDS <= 5
        assert core.store.connection_options()["connect_timeout"] == DATABASE_CONNECT_TIMEOUT_SECONDS
    finally:
        core.close()


def test_an_open_connection_gives_up_on_a_silent_database_host_after_about_the_connect_timeout(make_settings):
    """An unacknowledged send ends after tcp_user_timeout; a reply that never comes, after the
    keepalive probes of a quiet connection go unanswered. The proxy of
    tests/integration/test_silent_database_host.py shows only the first: its kernel answers probes."""
    from warehouse_core.bootstrap import DATABASE_CONNECT_TIMEOUT_SECONDS as TIMEOUT

    core = bootstrap(make_settings(), migrate=False, check_view=False)
    try:
        options = core.store.connection_options()
        assert options["tcp_user_timeout"] == TIMEOUT * 1000  # milliseconds
        assert options["keepalives"] == 1
        # Without tcp_user_timeout (other systems): quiet that long, then that many probes.
        assert options["keepalives_idle"] + options["keepalives_interval"] * options["keepalives_count"] <= 2 * TIMEOUT
    finally:
        core.close()


def test_the_server_ends_the_backend_of_a_client_it_no_longer_hears_within_about_a_minute(make_settings):
    """Server-side keepalives on every connection of the service, the lock holders' included, so a
    vanished client's advisory locks are released within about a minute instead of about two hours
    (tests/integration/test_vanished_lock_holder.py drops the network to show it)."""
    core = bootstrap(make_settings(), migrate=False, check_view=False)
    try:
        options = dict(
            item.split("=", 1) for item in core.store.connection_options()["options"].replace("-c ", "").split()
        )
        assert int(options["tcp_user_timeout"]) == 60 * 1000
        idle, interval, count = (int(options["tcp_keepalives_" + name]) for name in ("idle", "interval", "count"))
        assert 0 < idle < 60 and idle + interval * count <= 60
    finally:
        core.close()


def test_the_dba_page_states_the_server_side_limits_the_connections_set(make_settings):
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "dba.md").read_text(encoding="utf-8")
    documented = dict(re.findall(r"`(tcp_[a-z_]+)=(\d+)`", page))
    core = bootstrap(make_settings(), migrate=False, check_view=False)
    try:
        options = core.store.connection_options()["options"]
    finally:
        core.close()
    served = dict(re.findall(r"-c (tcp_[a-z_]+)=(\d+)", options))
    assert documented and documented == served


def customer_templates(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / "customer-templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path / "customer-templates"


@pytest.mark.parametrize(
    "text, line, reason",
    [
        ("No file for {{ day.isoformat() }}.\n\n{% if server_error %}\n{{ server_error }\n", 4, "unexpected '}'"),
        ("No file for {{ day.isoformat() }}.\n\nSee {{ day.weekday_name }}\n", 3, "has no attribute 'weekday_name'"),
        ("No file.\n{% for name in incomplet %}{{ name }}{% endfor %}\n", 2, "'incomplet' is undefined"),
    ],
    ids=["syntax", "undefined-attribute", "undefined-name"],
)
def test_a_broken_customer_mail_template_stops_the_start_naming_its_file_and_line(
    make_settings, tmp_path, text, line, reason
):
    """SPEC §8: not months later, at the first no-file alert."""
    folder = customer_templates(tmp_path, {"mail/no-file.txt": text})
    with pytest.raises(ConfigurationError) as caught:
        bootstrap(make_settings(templates_dir=str(folder)), store=FakeStore(invoice_view=SAMPLE_VIEW))
    message = str(caught.value)
    assert "\n" not in message
    assert "{}, line {}".format(folder / "mail" / "no-file.txt", line) in message and reason in message


def test_the_built_in_templates_and_a_sound_customer_template_pass_the_check(make_settings, tmp_path):
    folder = customer_templates(
        tmp_path,
        {"mail/no-file.txt": "Nessun file per {{ day.isoformat() }}.\n{% for n in other_days %}{{ n }}{% endfor %}"},
    )
    assert bootstrap(make_settings(templates_dir=str(folder)), store=FakeStore(invoice_view=SAMPLE_VIEW))
    assert bootstrap(make_settings(), store=FakeStore(invoice_view=SAMPLE_VIEW))


def test_a_customer_template_of_the_big_lists_written_for_a_plain_list_still_renders_bounded(make_settings, tmp_path):
    """A template written before invoices.csv (``|length``, a plain ``for``) passes the check and
    lists at most 200: the count is still the whole list's."""
    from warehouse_core.model import MailEvent
    from warehouse_core.usecases.mails import compose

    folder = customer_templates(
        tmp_path,
        {
            "mail/session-completed.txt": "Mancano {{ not_present|length }}:\n{% for i in not_present %}{{ i }}\n{% endfor %}"
        },
    )
    core = bootstrap(make_settings(templates_dir=str(folder)), store=FakeStore(invoice_view=SAMPLE_VIEW))
    numbers = ["6{:08d}".format(i) for i in range(300)]
    mail = compose(
        core.ingest_daily_file.renderer,
        MailEvent.SESSION_COMPLETED,
        core.clock.now().date(),
        invoices={"not_present": numbers},
        session=core.session_status(),
    )
    assert mail.text.startswith("Mancano 300:\n") and mail.text.count("\n") == 201
    assert len(mail.attachments) == 1
