from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import settings_values
from warehouse_core.endpoints import FtpEndpoint, redact_url
from warehouse_core.errors import ConfigurationError
from warehouse_core.settings import load_settings, variable_name


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
        environment(
            inbound_ftp_url="ftp://u:topsecret@h:21/in", secret_key="k3y-k3y", operators="ann:pbkdf2:sha256:xyz"
        )
    )
    text = repr(settings) + str(settings)
    assert "topsecret" not in text and "k3y-k3y" not in text and "pbkdf2" not in text
    assert settings.inbound_ftp_url.describe() == "ftp://u@h:21/in"
    assert redact_url("ftp://u:topsecret@h:21/in") == "ftp://u:***@h:21/in"


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


def test_an_export_name_without_the_date_is_refused():
    """Without {date} every day would upload under one temporary name on the outbound server."""
    with pytest.raises(ConfigurationError, match=r"WAREHOUSE_EXPORT_NAME must hold \{date\}"):
        load_settings(environment(export_name="Spedizioni_{records}.txt"))


def test_ftp_url_parts():
    settings = load_settings(environment(inbound_ftp_url="ftps://user%40x:p%3Ass@example.org:2121/in/box"))
    assert settings.inbound_ftp_url == FtpEndpoint(
        host="example.org", port=2121, user="user@x", password="p:ss", directory="/in/box", tls=True
    )


# --- start-up validation (SPEC §8): values that would pass here and fail later -------------------


@pytest.mark.parametrize("schema", ["Warehouse", "wareHouse", "pg_warehouse", "w" * 64])
def test_schema_name_must_be_a_lower_case_identifier(schema):
    # Quoted in migrate, unquoted in search_path: "Warehouse" would create one schema and use another.
    with pytest.raises(ConfigurationError, match="WAREHOUSE_DB_SCHEMA"):
        load_settings(environment(db_schema=schema))


def test_lower_case_schema_names_are_accepted():
    assert load_settings(environment(db_schema="warehouse_2")).db_schema == "warehouse_2"


@pytest.mark.parametrize(
    "key, url",
    [
        ("inbound_ftp_url", "ftp://u:hunter2@h:99999/"),
        ("outbound_ftp_url", "ftps://u:hunter2@h:0/out"),
        ("outbound_ftp_url", "ftp://u:hunter2@h:twentyone/out"),
        ("smtp_url", "smtps://u:hunter2@h:65536"),
        ("database_url", "postgresql://u:hunter2@h:70000/warehouse"),
        ("database_url", "postgresql://u:hunter2@h1:5432,h2:99999/warehouse"),
        ("remote_log_fs", "ssh://u:hunter2@h:100000/"),
    ],
)
def test_ports_out_of_range_are_refused_naming_the_key(key, url):
    with pytest.raises(ConfigurationError) as caught:
        load_settings(environment(**{key: url}))
    message = str(caught.value)
    assert variable_name(key) in message and "port" in message
    assert "hunter2" not in message


def test_ports_in_range_and_urls_without_ports_are_accepted():
    settings = load_settings(
        environment(
            inbound_ftp_url="ftp://u:p@h:2121/",
            outbound_ftp_url="ftps://h/out",
            database_url="postgresql://u@h1:5432,h2:5433/warehouse",
            remote_log_fs="ssh://u@h:22/",
            remote_log_host_key="SHA256:" + "A" * 43,
        )
    )
    assert settings.inbound_ftp_url.port == 2121


def test_smtp_password_in_clear_is_refused():
    with pytest.raises(ConfigurationError) as caught:
        load_settings(environment(smtp_url="smtp://mailer:hunter2@mail.example.org:25"))
    message = str(caught.value)
    assert "WAREHOUSE_SMTP_URL" in message and "starttls=true" in message and "hunter2" not in message
    with pytest.raises(ConfigurationError, match="WAREHOUSE_SMTP_URL"):
        load_settings(environment(smtp_url="smtp://mailer:hunter2@mail.example.org:25?starttls=false"))


@pytest.mark.parametrize(
    "url",
    [
        "smtp://mailer:hunter2@mail.example.org:587?starttls=true",
        "smtps://mailer:hunter2@mail.example.org:465",
        "smtp://mail.example.org:25",  # no password: nothing to protect
        "smtp://mailer@mail.example.org:25",
    ],
)
def test_smtp_urls_that_protect_the_password_are_accepted(url):
    assert load_settings(environment(smtp_url=url)).smtp_url.host == "mail.example.org"


def test_one_message_names_every_key_the_new_checks_refuse():
    env = environment(
        db_schema="Warehouse",
        inbound_ftp_url="ftp://u:hunter2@h:99999/",
        smtp_url="smtp://u:hunter2@h:25",
        poll_days="someday",
    )
    with pytest.raises(ConfigurationError) as caught:
        load_settings(env)
    message = str(caught.value)
    for key in ("WAREHOUSE_DB_SCHEMA", "WAREHOUSE_INBOUND_FTP_URL", "WAREHOUSE_SMTP_URL", "WAREHOUSE_POLL_DAYS"):
        assert key in message
    assert "\n" not in message and "hunter2" not in message


def test_unknown_warehouse_variables_are_warned_about_with_the_closest_name(caplog, tmp_path):
    config = tmp_path / "warehouse.env"
    config.write_text("WAREHOUSE_MAIL_TOO=ops@example.com\n")
    env = dict(
        environment(),
        WAREHOUSE_POLL_WINDOWS="07:00-21:00",
        WAREHOUSE_DATABSE_URL="postgresql://u:hunter2@h/x",
        WAREHOUSE_ZZZ="1",
        WAREHOUSE_CONFIG=str(config),
        OTHER_PREFIX_POLL_WINDOWS="x",
    )
    with caplog.at_level("WARNING", logger="warehouse_core.settings"):
        settings = load_settings(env)
    assert settings.poll_window == (dt.time(8, 0), dt.time(20, 0))  # the misspelled key changed nothing
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 4, warnings
    text = "\n".join(warnings)
    assert "WAREHOUSE_POLL_WINDOWS" in text and "did you mean WAREHOUSE_POLL_WINDOW?" in text
    assert "WAREHOUSE_DATABSE_URL" in text and "did you mean WAREHOUSE_DATABASE_URL?" in text
    assert "WAREHOUSE_MAIL_TOO" in text and "did you mean WAREHOUSE_MAIL_TO?" in text
    assert "WAREHOUSE_ZZZ" in text
    assert "hunter2" not in text and "OTHER_PREFIX" not in text and "WAREHOUSE_CONFIG " not in text


def test_every_setting_and_the_config_variable_are_known_names():
    from warehouse_core.settings import Settings, known_variables

    names = known_variables()
    assert {variable_name(field) for field in Settings.model_fields} <= names
    assert "WAREHOUSE_CONFIG" in names
