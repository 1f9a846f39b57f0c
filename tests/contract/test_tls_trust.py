"""WAREHOUSE_CA_FILE: FTPS (pyftpdlib and vsftpd) and SMTPS/STARTTLS trust the configured CA and
nothing else. The servers' certificates are signed by a CA made for the run; a server whose
certificate another CA signed is what a man in the middle would present."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import SMTP_PASSWORD, SMTP_USER
from tests.fakes import FakeStore
from warehouse_core.bootstrap import bootstrap
from warehouse_devstack.servers import FtpServer, SmtpServer, VsftpdServer

KINDS = ["pyftpdlib-ftps", "vsftpd-ftps", "smtps", "starttls"]


@pytest.fixture
def start_server(request, tmp_path):
    """Starts a TLS server of a kind with a certificate from the given CA; stopped after the test."""
    started = []

    def start(kind, authority):
        certificate = authority.issue(kind)
        if kind == "pyftpdlib-ftps":
            server = FtpServer(tmp_path / kind, tls=True, certfile=certificate).start()
        elif kind == "vsftpd-ftps":
            directory = Path(tempfile.mkdtemp(prefix="warehouse-vsftpd-"))
            request.addfinalizer(lambda: shutil.rmtree(str(directory), ignore_errors=True))
            server = VsftpdServer(
                directory, request.getfixturevalue("vsftpd_account"), tls=True, certfile=certificate
            ).start()
        else:
            server = SmtpServer(tls=kind, certfile=certificate, user=SMTP_USER, password=SMTP_PASSWORD).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def talk(kind, server, make_settings, **settings):
    """Log on through the adapters that bootstrap builds from the settings, as the service and
    `warehouse-runner check` do: an FTPS login and listing, or an SMTP login and NOOP over TLS."""
    if kind.endswith("ftps"):
        settings["inbound_ftp_url"] = server.url()
    else:
        settings["smtp_url"] = server.url()
    core = bootstrap(make_settings(ftp_timeout=5, **settings), store=FakeStore(), migrate=False)
    core.check_dependencies.probes["inbound_ftp" if kind.endswith("ftps") else "smtp"]()


REFUSED = "CERTIFICATE_VERIFY_FAILED|certificate verify failed"


@pytest.mark.parametrize("kind", KINDS)
def test_a_certificate_signed_by_the_configured_ca_is_trusted(kind, start_server, certificate_authority, make_settings):
    server = start_server(kind, certificate_authority)
    talk(kind, server, make_settings, ca_file=str(certificate_authority.cafile))


@pytest.mark.parametrize("kind", KINDS)
def test_a_certificate_from_another_ca_is_refused(
    kind, start_server, certificate_authority, unknown_certificate_authority, make_settings
):
    server = start_server(kind, unknown_certificate_authority)
    with pytest.raises(Exception, match=REFUSED):
        talk(kind, server, make_settings, ca_file=str(certificate_authority.cafile))


@pytest.mark.parametrize("kind", KINDS)
def test_without_a_ca_file_the_system_trust_store_decides(kind, start_server, certificate_authority, make_settings):
    server = start_server(kind, certificate_authority)
    with pytest.raises(Exception, match=REFUSED):
        talk(kind, server, make_settings)
