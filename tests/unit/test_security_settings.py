"""The security settings of §8: pinned SSH host keys, the CA bundle, the trusted proxy."""

from __future__ import annotations

import pytest

from tests.conftest import settings_values
from warehouse_core.errors import ConfigurationError
from warehouse_core.settings import load_settings, variable_name

FINGERPRINT = "SHA256:PVnKlgokceg6XLVdIl18SQQqO6W+JB1QByWCWwcoBQI"
OTHER = "SHA256:" + "x" * 43


def environment(**overrides):
    return {variable_name(key): str(value) for key, value in settings_values(**overrides).items()}


def test_an_ssh_remote_log_without_a_host_key_stops_the_start_saying_how_to_get_it():
    env = environment(remote_log_fs="ssh://importer:pw@logs.example.org:2222/var/log")
    with pytest.raises(ConfigurationError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert "WAREHOUSE_REMOTE_LOG_HOST_KEY is required for an ssh:// remote log" in message
    assert "`ssh-keyscan -p 2222 logs.example.org | ssh-keygen -lf -`" in message
    assert "importer:pw" not in message


def test_host_keys_are_sha256_fingerprints_comma_separated():
    settings = load_settings(
        environment(remote_log_fs="ssh://importer@logs.example.org/", remote_log_host_key=FINGERPRINT + "=, " + OTHER)
    )
    assert settings.remote_log_host_key == (FINGERPRINT, OTHER)
    for wrong in ("PVnKlgokceg6XLVdIl18SQQqO6W+JB1QByWCWwcoBQI", "MD5:12:34", "SHA256:short", "yes"):
        with pytest.raises(ConfigurationError, match="WAREHOUSE_REMOTE_LOG_HOST_KEY must be SHA256:"):
            load_settings(environment(remote_log_fs="ssh://importer@logs.example.org/", remote_log_host_key=wrong))


def test_a_local_remote_log_needs_no_host_key():
    assert load_settings(environment(remote_log_fs="osfs:///var/log")).remote_log_host_key == ()


def test_the_service_does_not_start_without_the_host_key(monkeypatch, capsys):
    from warehouse_runner import cli

    for key, value in environment(remote_log_fs="ssh://importer@logs.example.org/").items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WAREHOUSE_REMOTE_LOG_HOST_KEY", raising=False)
    monkeypatch.delenv("WAREHOUSE_CONFIG", raising=False)
    assert cli.main(["migrate"]) != 0
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        "WAREHOUSE_REMOTE_LOG_HOST_KEY" in last_line and "ssh-keyscan logs.example.org | ssh-keygen -lf -" in last_line
    )


def test_the_ca_file_must_be_a_readable_bundle_of_certificates(tmp_path):
    assert load_settings(environment()).ca_file is None
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    for wrong in (tmp_path / "absent.pem", not_pem, tmp_path):
        with pytest.raises(
            ConfigurationError, match="WAREHOUSE_CA_FILE must name a readable PEM file of CA certificates"
        ):
            load_settings(environment(ca_file=wrong))


def test_the_ca_file_is_read_at_start(certificate_authority):
    settings = load_settings(environment(ca_file=certificate_authority.cafile))
    assert settings.ca_file == certificate_authority.cafile


def test_the_trusted_proxy_is_an_ip_address():
    assert load_settings(environment()).trusted_proxy is None
    assert load_settings(environment(trusted_proxy=" ::1 ")).trusted_proxy == "::1"
    for wrong in ("localhost", "*", "10.0.0.0/8"):
        with pytest.raises(ConfigurationError, match="WAREHOUSE_TRUSTED_PROXY must be the reverse proxy's IP address"):
            load_settings(environment(trusted_proxy=wrong))


def test_the_example_configuration_asks_for_the_real_host_key_and_nothing_else():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "deploy" / "warehouse.env.example"
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"WAREHOUSE_CONFIG": str(example)})
    assert str(caught.value) == (
        "invalid configuration: WAREHOUSE_REMOTE_LOG_HOST_KEY must be SHA256:… fingerprints as "
        "`ssh-keygen -lf` prints them, comma-separated"
    )
    fingerprint = {"WAREHOUSE_REMOTE_LOG_HOST_KEY": FINGERPRINT}
    settings = load_settings(dict(fingerprint, WAREHOUSE_CONFIG=str(example)))
    assert settings.trusted_proxy == "127.0.0.1" and settings.remote_log_host_key == (FINGERPRINT,)
