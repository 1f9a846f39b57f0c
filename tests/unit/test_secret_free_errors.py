"""No secret in a start-up error or a log line, whatever the database URL's password holds (SPEC §8).

libpq quotes the part of a URL it cannot parse, password included ("invalid percent-encoded
token", "unexpected spaces found in"): the password never reaches libpq inside the URL, and every
line the entry points write is cleared of the passwords of the configured URLs as well.
"""

from __future__ import annotations

import io
import logging

import pytest

from tests.conftest import settings_values
from warehouse_core.adapters.postgres import PsycopgStore
from warehouse_core.redact import Redactor, url_password
from warehouse_core.settings import Settings

# (as written in the URL, the password the server must receive)
PASSWORDS = [
    ("pa%ss", "pa%ss"),  # a % that is no percent-encoding
    ("pa ss", "pa ss"),
    ("p@ss", "p@ss"),
    ("pa:ss", "pa:ss"),
    ("50%:@ off", "50%:@ off"),
    ("pa%25ss%20x%40y%3Az", "pa%ss x@y:z"),  # encoded
]


@pytest.mark.parametrize("written, password", PASSWORDS)
def test_the_password_is_taken_out_of_the_url_decoded_where_it_is_encoded(written, password):
    url = "postgresql://warehouse:{}@db.example.org:5432/warehouse?sslmode=require".format(written)
    assert url_password(url) == ("postgresql://warehouse@db.example.org:5432/warehouse?sslmode=require", password)


def test_a_url_without_a_password_is_left_alone():
    for url in ("postgresql://warehouse@db/warehouse", "postgresql:///warehouse", "postgresql://db/w"):
        assert url_password(url) == (url, None)
    assert url_password("postgresql://warehouse:@db/w") == ("postgresql://warehouse@db/w", None)


@pytest.mark.parametrize("written, password", PASSWORDS)
def test_the_store_hands_libpq_the_password_apart_from_the_url(written, password):
    store = PsycopgStore("postgresql://warehouse:{}@127.0.0.1:1/warehouse".format(written))
    assert store.url == "postgresql://warehouse@127.0.0.1:1/warehouse"
    assert store.connection_options()["password"] == password
    assert written not in repr(store.url)


@pytest.mark.parametrize("written, password", PASSWORDS)
def test_every_form_of_a_password_is_cleared_from_a_line(written, password):
    redactor = Redactor()
    redactor.add_url("postgresql://warehouse:{}@db:5432/w".format(written))
    for line in (
        'invalid percent-encoded token: "{}"'.format(written),
        "password {} refused".format(password),
        "connection to postgresql://warehouse:{}@db:5432/w failed".format(written),
    ):
        cleared = redactor(line)
        assert written not in cleared and password not in cleared
        assert "***" in cleared


def test_the_redactor_knows_the_passwords_of_every_secret_setting(tmp_path):
    settings = Settings(
        **settings_values(
            database_url="postgresql://u:db%secret@h/w",
            inbound_ftp_url="ftp://u:in secret@h/",
            outbound_ftp_url="ftp://u:out@secret@h/",
            smtp_url="smtp://u:mail:secret@h:25?starttls=true",
            remote_log_fs="ssh://u:log secret@h:22/",
            remote_log_host_key="SHA256:" + "x" * 43,
            secret_key="the flask key",
            data_dir=str(tmp_path),
        )
    )
    redactor = Redactor()
    redactor.add_settings(settings)
    line = "db%secret in secret out@secret mail:secret log secret the flask key"
    assert redactor(line).replace("***", "").split() == []


def test_logging_through_the_redactor_clears_messages_and_tracebacks():
    redactor = Redactor()
    redactor.add_url("postgresql://u:s3cr et@h/w")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    redactor.install(handler)
    logger = logging.getLogger("test-redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("error connecting: %s", 'unexpected spaces found in "s3cr et"')
        try:
            raise ValueError("bad token s3cr et")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "s3cr et" not in text and "s3cr%20et" not in text
    assert "ValueError: bad token ***" in text


@pytest.mark.parametrize("program", ["warehouse_runner", "warehouse_web"])
@pytest.mark.parametrize("written", ["pa%ss", "pa ss", "p@ss:w%rd x"])
def test_a_start_up_error_says_no_password(program, written, monkeypatch, capsys):
    """Whatever an adapter's error quotes, the start-up line is cleared of the password."""
    from warehouse_core.settings import variable_name

    for key, value in settings_values(database_url="postgresql://u:{}@127.0.0.1:1/w".format(written)).items():
        monkeypatch.setenv(variable_name(key), value)
    monkeypatch.setenv("WAREHOUSE_SECRET_KEY", "test-only")

    def failing_bootstrap(settings, **options):
        raise RuntimeError('invalid percent-encoded token: "{}"'.format(written))

    if program == "warehouse_runner":
        from warehouse_runner import cli

        monkeypatch.setattr(cli, "bootstrap", failing_bootstrap)
        status = cli.main(["migrate"])
    else:
        from warehouse_web import cli as web_cli

        monkeypatch.setattr(web_cli, "bootstrap", failing_bootstrap)
        status = web_cli.main(["--no-scheduler"])
    err = capsys.readouterr().err
    assert status == 1
    assert written not in err
    assert "cannot start" in err.strip().splitlines()[-1]
