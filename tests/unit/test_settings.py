from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import settings_values
from warehouse_core.errors import ConfigurationError
from warehouse_core.settings import ftp_parts, load_settings, redact_url, variable_name


def environment(**overrides):
    return {variable_name(key): str(value) for key, value in settings_values(**overrides).items()}


def test_defaults_follow_the_spec():
    settings = load_settings(environment())
    assert settings.db_schema == "warehouse"
    assert settings.invoice_view == "public.invoice_view"
    assert settings.export_columns[0] == "invoice_number" and settings.export_columns[-1] == "value"
    assert settings.export_name == "Spedizioni{date}_{records}.txt"
    assert settings.poll_window == (dt.time(8, 0), dt.time(20, 0))
    assert settings.poll_days == frozenset({0, 1, 2, 3, 4})
    assert settings.no_file_alert_at == dt.time(19, 0)
    assert settings.poll_every_minutes == 30 and settings.ftp_timeout == 30
    assert settings.remote_log_timeout == 900 and settings.remote_log_interval == 15
    assert settings.mail_to == ("ops@example.com", "boss@example.com")
    assert settings.timezone == "Europe/Rome" and settings.max_upload_mb == 50


def test_one_error_names_every_bad_and_missing_key_without_values():
    env = environment(ftp_timeout="soon", poll_window="late", smtp_url="http://x:hunter2@host")
    del env["WAREHOUSE_DATABASE_URL"]
    with pytest.raises(ConfigurationError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert "\n" not in message
    for key in ("WAREHOUSE_DATABASE_URL", "WAREHOUSE_FTP_TIMEOUT", "WAREHOUSE_POLL_WINDOW", "WAREHOUSE_SMTP_URL"):
        assert key in message
    assert "hunter2" not in message and "soon" not in message


def test_secrets_never_show_in_repr():
    settings = load_settings(
        environment(inbound_ftp_url="ftp://u:topsecret@h:21/in", secret_key="k3y-k3y", operators="ann:pbkdf2:sha256:xyz")
    )
    text = repr(settings) + str(settings)
    assert "topsecret" not in text and "k3y-k3y" not in text and "pbkdf2" not in text
    assert redact_url(settings.inbound_ftp_url.get_secret_value()) == "ftp://u:***@h:21/in"


def test_config_file_is_read_and_the_environment_wins(tmp_path):
    config = tmp_path / "warehouse.env"
    lines = ["# comment", 'export WAREHOUSE_DB_SCHEMA="from_file"', "WAREHOUSE_POLL_DAYS=mon,wed"]
    lines += ["{}={}".format(k, v) for k, v in environment().items()]
    config.write_text("\n".join(lines))
    settings = load_settings({"WAREHOUSE_CONFIG": str(config), "WAREHOUSE_POLL_DAYS": "sat-mon"})
    assert settings.db_schema == "from_file"
    assert settings.poll_days == frozenset({5, 6, 0})


def test_missing_config_file_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="WAREHOUSE_CONFIG"):
        load_settings({"WAREHOUSE_CONFIG": str(tmp_path / "absent.env")})


@pytest.mark.parametrize(
    "key, value",
    [
        ("db_schema", "bad-name; drop"),
        ("invoice_view", "a.b.c"),
        ("export_name", "../{date}.txt"),
        ("export_name", "{unknown}.txt"),
        ("remote_log_pattern", "no groups"),
        ("remote_log_pattern", "(?P<file>x"),
        ("timezone", "Mars/Olympus"),
        ("poll_days", "someday"),
        ("mail_to", "nobody"),
        ("poll_every_minutes", "0"),
        ("operators", "nohash"),
        ("remote_log_fs", "just-a-path"),
    ],
)
def test_bad_values_are_refused(key, value):
    with pytest.raises(ConfigurationError, match=variable_name(key)):
        load_settings(environment(**{key: value}))


def test_ftp_url_parts():
    settings = load_settings(environment(inbound_ftp_url="ftps://user%40x:p%3Ass@example.org:2121/in/box"))
    assert ftp_parts(settings.inbound_ftp_url) == {
        "host": "example.org",
        "port": 2121,
        "user": "user@x",
        "password": "p:ss",
        "directory": "/in/box",
        "tls": True,
    }
