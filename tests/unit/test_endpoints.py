"""Each server's URL is parsed once, by the settings, into a typed endpoint that the adapters take
as it is: no adapter parses a URL or asks the settings to."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

from tests.conftest import settings_values
from warehouse_core.adapters.fs_remote_log import FsRemoteLog
from warehouse_core.adapters.ftplib_files import FtplibFiles
from warehouse_core.adapters.smtp_mailer import SmtpMailer
from warehouse_core.endpoints import FtpEndpoint, RemoteLogEndpoint, SmtpEndpoint, SshLogin
from warehouse_core.errors import ConfigurationError
from warehouse_core.settings import load_settings, variable_name

SRC = Path(__file__).resolve().parents[2] / "src"


def environment(**overrides):
    return {variable_name(key): str(value) for key, value in settings_values(**overrides).items()}


def test_the_settings_hold_each_url_as_its_endpoint():
    settings = load_settings(
        environment(
            inbound_ftp_url="ftps://user%40x:p%3Ass@example.org:2121/in/box",
            outbound_ftp_url="ftp://h/",
            smtp_url="smtp://mailer:s3cret@relay.example.org:587?starttls=true",
            remote_log_fs="ssh://importer:pw@logs.example.org:2222/var/log?timeout=7",
            remote_log_host_key="SHA256:" + "A" * 43,
        )
    )
    assert settings.inbound_ftp_url == FtpEndpoint(
        host="example.org", port=2121, user="user@x", password="p:ss", directory="/in/box", tls=True
    )
    assert settings.outbound_ftp_url == FtpEndpoint(host="h", port=21, user="anonymous", password="", directory="/")
    assert settings.smtp_url == SmtpEndpoint(
        host="relay.example.org", port=587, user="mailer", password="s3cret", implicit_tls=False, starttls=True
    )
    assert settings.remote_log_fs.ssh == SshLogin(
        host="logs.example.org", port=2222, user="importer", password="pw", timeout=7.0, folder="var/log"
    )
    text = repr(settings) + str(settings)
    assert "p:ss" not in text and "s3cret" not in text and ":pw@" not in text and "pw'" not in text


@pytest.mark.parametrize(
    "url, host, port, user, implicit_tls, starttls",
    [
        ("smtp://127.0.0.1:2525", "127.0.0.1", 2525, None, False, False),
        ("smtp://relay", "relay", 25, None, False, False),
        ("smtps://u%40x:p@relay", "relay", 465, "u@x", True, False),
        ("smtp://u:p@relay:587?starttls=yes", "relay", 587, "u", False, True),
    ],
)
def test_an_smtp_url_becomes_what_the_mailer_connects_to(url, host, port, user, implicit_tls, starttls):
    endpoint = SmtpEndpoint.parse(url)
    assert (endpoint.host, endpoint.port, endpoint.user) == (host, port, user)
    assert (endpoint.implicit_tls, endpoint.starttls) == (implicit_tls, starttls)
    mailer = SmtpMailer(endpoint, "a@example.com", ["b@example.com"])
    assert (mailer.host, mailer.port, mailer.user, mailer.implicit_tls, mailer.starttls) == (
        host,
        port,
        user,
        implicit_tls,
        starttls,
    )


@pytest.mark.parametrize(
    "url",
    [
        "ssh://importer:pw@logs.example.org:2222/var/log",
        "ssh://importer@127.0.0.1:2200/?pkey=/keys/id_ed25519",
        "ssh://importer@[::1]:2200/logs?pkey=/k%20ey&timeout=3",
        "ssh://a%40b:p%3Aw@host/",
        "ssh://host",
    ],
)
def test_an_ssh_log_url_reads_as_pyfilesystem2_reads_it(url):
    """The endpoint holds what fs.sshfs's own URL parser finds, so the log opens where it did."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fs.opener.parse import parse_fs_url

    parsed = parse_fs_url(url)
    address, _, folder = parsed.resource.partition("/")
    login = RemoteLogEndpoint.parse(url).ssh
    assert login is not None
    assert (login.user, login.password) == (parsed.username or None, parsed.password or None)
    assert login.key_file == parsed.params.get("pkey")
    assert login.timeout == (float(parsed.params["timeout"]) if "timeout" in parsed.params else None)
    assert login.folder == folder
    assert login.host in address and str(login.port) in (address + ":22")


@pytest.mark.parametrize(
    "address, host, port, folder",
    [
        ("logs.example.org/var/log", "logs.example.org", 22, "var/log"),
        ("logs.example.org:2222/", "logs.example.org", 2222, ""),
        ("[::1]:2222/var", "::1", 2222, "var"),
        ("[::1]", "::1", 22, ""),
    ],
)
def test_ssh_addresses_with_and_without_port_and_in_ipv6(address, host, port, folder):
    login = RemoteLogEndpoint.parse("ssh://importer@" + address).ssh
    assert login is not None and (login.host, login.port, login.folder) == (host, port, folder)


def test_a_local_log_folder_is_handed_to_pyfilesystem2_as_it_is():
    endpoint = RemoteLogEndpoint.parse("osfs:///var/log/importer")
    assert endpoint.ssh is None and endpoint.url == "osfs:///var/log/importer"
    assert FsRemoteLog(endpoint).describe() == "osfs:///var/log/importer"


def test_the_adapters_describe_their_endpoint_without_its_password():
    assert FsRemoteLog(
        RemoteLogEndpoint.parse("ssh://u:hunter2@h:2222/logs"), host_keys=["SHA256:" + "A" * 43]
    ).describe() == ("ssh://u:***@h:2222/logs")
    ftp = FtplibFiles.from_endpoint(FtpEndpoint.parse("ftps://u:hunter2@h:990/out"), timeout=5)
    assert ftp.describe() == "ftps://u@h:990/out"


def test_a_bad_remote_log_timeout_is_refused_at_start():
    with pytest.raises(ConfigurationError, match="WAREHOUSE_REMOTE_LOG_FS"):
        load_settings(environment(remote_log_fs="ssh://u@h/?timeout=soon", remote_log_host_key="SHA256:" + "A" * 43))


def imports_of(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def test_no_adapter_parses_a_url_or_reads_the_settings():
    for path in sorted((SRC / "warehouse_core" / "adapters").rglob("*.py")):
        for module, names in imports_of(path):
            assert module != "warehouse_core.settings", path
            assert not (module == "urllib.parse" and {"urlsplit", "urlparse"} & set(names)), path
            assert module != "fs.opener.parse", path


def test_the_settings_module_stays_readable_at_once():
    assert len((SRC / "warehouse_core" / "settings.py").read_text(encoding="utf-8").splitlines()) < 300
