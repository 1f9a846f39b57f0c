"""Fixtures: settings, fakes, and real servers on loopback (PostgreSQL, FTP, FTPS, SMTP)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import ssl
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
from hypothesis import settings

from tests import faketime
from warehouse_core.clock import zone
from warehouse_core.settings import Settings
from warehouse_devstack.servers import (
    CertificateAuthority,
    FtpServer,
    PostgresCluster,
    SmtpServer,
    load_invoice_view,
)

# `make test` runs hypothesis's default profile; `make soak` and `make mutation` load these by name
# (mutation: the same examples for every mutant, and none kept between runs).
settings.register_profile("soak", max_examples=5000, deadline=None)
settings.register_profile("mutation", deadline=None, derandomize=True, database=None)

# The dev-only servers and samples: importable here through pytest's pythonpath (pyproject.toml);
# a subprocess that imports them gets DEVSTACK on its PYTHONPATH (devstack_pythonpath).
DEVSTACK = Path(__file__).resolve().parent.parent / "devstack"
SAMPLES = DEVSTACK / "warehouse_devstack" / "samples"
VALID_SAMPLE = SAMPLES / "Letture20261126083015123_9.txt"
MALFORMED_SAMPLE = SAMPLES / "Letture20261126101500000_5.txt"
INCOMPLETE_SAMPLE = SAMPLES / "Letture20261126120000000_20.txt"
ROME = zone("Europe/Rome")
# The sample view (samples/invoice_view.sql): every invoice of the valid sample but 600000004 and 600000099.
SAMPLE_VIEW = {
    row[0]: dict(zip(("invoice_number", "invoice_date", "customer_code", "customer_name", "delivery_address"), row))
    for row in (
        ("600000001", dt.date(2026, 11, 20), "C001", "Rossi Alimentari", "Via Roma 1, Milano"),
        ("600000002", dt.date(2026, 11, 21), "C002", "Bianchi & Figli", "Corso Italia 22, Torino"),
        ("600000005", dt.date(2026, 11, 24), "C003", "Verdi S.r.l.", "Piazza Duomo 3, Firenze"),
        ("600000006", dt.date(2026, 11, 25), "C001", "Rossi Alimentari", "Via Roma 1, Milano"),
        ("600000007", dt.date(2026, 11, 25), "C004", "Esposito Market", "Via Toledo 9, Napoli"),
        ("600000008", dt.date(2026, 11, 26), "C005", "Gallo Drinks", "Via Po 5, Bologna"),
    )
}


def devstack_pythonpath(env: Dict[str, str]) -> str:
    """``env``'s PYTHONPATH with the devstack folder first."""
    return os.pathsep.join(filter(None, [str(DEVSTACK), env.get("PYTHONPATH")]))


def at(text: str) -> dt.datetime:
    """A local time in Europe/Rome, e.g. at('2026-11-26T10:00')."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=ROME)


# --- The service's own processes ------------------------------------------------------------

# Where the clock of every service process a test starts begins, unless the test says otherwise
# (``WAREHOUSE_CLOCK_START=…`` among its values, or ``--at`` on the command): never today.
CLOCK_START = "2026-11-26T10:00"
SERVICE_PROCESS_FIXTURES = {"service_environment"}


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers", "service_process: starts the service's own processes (make test-faketime runs it under libfaketime)"
    )


def pytest_collection_modifyitems(items: List[Any]) -> None:
    for item in items:
        if SERVICE_PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.service_process)


@pytest.fixture
def service_environment() -> Callable[..., Dict[str, str]]:
    """Builds the environment of the service's processes (warehouse-runner, warehouse-web, make run):
    this process's environment without any WAREHOUSE_* setting, the clock started at CLOCK_START,
    then ``values``. With WAREHOUSE_TEST_FAKETIME set (make test-faketime), the processes also run
    under libfaketime at that moment: one timeline for the whole test (tests/faketime.py)."""
    wall = faketime.from_environment()

    def build(**values: str) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WAREHOUSE_")}
        env["WAREHOUSE_CLOCK_START"] = CLOCK_START
        env.update(values)
        return wall.environment(env) if wall is not None else env

    return build


def settings_values(**overrides: Any) -> Dict[str, Any]:
    values: Dict[str, Any] = {
        "database_url": "postgresql://postgres@127.0.0.1:1/warehouse",
        "inbound_ftp_url": "ftp://warehouse:secret@127.0.0.1:21/",
        "outbound_ftp_url": "ftp://warehouse:secret@127.0.0.1:21/out",
        "remote_log_fs": "osfs:///tmp",
        "remote_log_path": "importer.log",
        "smtp_url": "smtp://127.0.0.1:25",
        "mail_from": "warehouse@example.com",
        "mail_to": "ops@example.com,boss@example.com",
    }
    values.update(overrides)
    return values


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        overrides.setdefault("data_dir", str(tmp_path / "var"))
        return Settings(**settings_values(**overrides))

    return build


# --- PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A server URL: WAREHOUSE_TEST_DATABASE_URL, or a throwaway cluster for the session."""
    existing = os.environ.get("WAREHOUSE_TEST_DATABASE_URL")
    if existing:
        load_invoice_view(existing, SAMPLES / "invoice_view.sql")
        yield existing
        return
    directory = Path(tempfile.mkdtemp(prefix="warehouse-pg-"))
    cluster = PostgresCluster(directory)
    try:
        cluster.start()
        url = cluster.create_database("warehouse_test")
        load_invoice_view(url, SAMPLES / "invoice_view.sql")
        yield url
    finally:
        cluster.stop()
        shutil.rmtree(str(directory), ignore_errors=True)


@pytest.fixture
def db_schema() -> str:
    """A fresh schema per test, so tests never see each other's rows."""
    return "test_" + uuid.uuid4().hex[:12]


@contextmanager
def psycopg_store(postgres_server: str, db_schema: str, invoice_view: str = "public.invoice_view") -> Iterator[Any]:
    """A migrated store in ``db_schema`` reading ``invoice_view``; the schema is dropped after."""
    from warehouse_core.adapters.postgres import PsycopgStore

    store = PsycopgStore(postgres_server, schema=db_schema, invoice_view=invoice_view)
    store.migrate()
    try:
        yield store
    finally:
        store.close()
        import psycopg

        with psycopg.connect(postgres_server, autocommit=True) as connection:
            connection.execute('DROP SCHEMA IF EXISTS "{}" CASCADE'.format(db_schema))


@pytest.fixture
def real_store(postgres_server: str, db_schema: str) -> Iterator[Any]:
    with psycopg_store(postgres_server, db_schema) as store:
        yield store


# --- FTP, FTPS, SMTP -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def certificate_authority() -> Iterator[CertificateAuthority]:
    """The run's private CA: every test server's certificate is signed by it."""
    directory = Path(tempfile.mkdtemp(prefix="warehouse-tls-"))
    try:
        yield CertificateAuthority(directory)
    finally:
        shutil.rmtree(str(directory), ignore_errors=True)


@pytest.fixture(scope="session")
def unknown_certificate_authority() -> Iterator[CertificateAuthority]:
    """Another CA, which no client of the tests trusts: what a man in the middle would present."""
    directory = Path(tempfile.mkdtemp(prefix="warehouse-tls-unknown-"))
    try:
        yield CertificateAuthority(directory, name="someone else's CA")
    finally:
        shutil.rmtree(str(directory), ignore_errors=True)


@pytest.fixture(scope="session")
def certificate(certificate_authority: CertificateAuthority) -> Path:
    """Key and certificate for 127.0.0.1, signed by the run's CA."""
    return certificate_authority.issue("server")


@pytest.fixture
def client_tls_context(certificate_authority: CertificateAuthority) -> ssl.SSLContext:
    return certificate_authority.client_context()


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[FtpServer]:
    server = FtpServer(tmp_path / "ftp-root").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ftps_server(tmp_path: Path, certificate: Path) -> Iterator[FtpServer]:
    server = FtpServer(tmp_path / "ftps-root", tls=True, certfile=certificate).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vsftpd_account() -> Iterator[Any]:
    """One local account for every vsftpd of the run (vsftpd logs system users in through PAM)."""
    from warehouse_devstack.servers import SystemFtpAccount, vsftpd_missing_reason

    reason = vsftpd_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    account = SystemFtpAccount().create()
    try:
        yield account
    finally:
        account.remove()


def _vsftpd(account: Any, tls: bool, certificate: Any = None) -> Iterator[Any]:
    from warehouse_devstack.servers import VsftpdServer

    directory = Path(tempfile.mkdtemp(prefix="warehouse-vsftpd-"))
    server = VsftpdServer(directory, account, tls=tls, certfile=certificate).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(str(directory), ignore_errors=True)


@pytest.fixture
def vsftpd_server(vsftpd_account: Any) -> Iterator[Any]:
    yield from _vsftpd(vsftpd_account, tls=False)


@pytest.fixture
def vsftpds_server(vsftpd_account: Any, certificate: Path) -> Iterator[Any]:
    """vsftpd with explicit FTPS, TLS required on both channels and require_ssl_reuse=YES."""
    yield from _vsftpd(vsftpd_account, tls=True, certificate=certificate)


# An FTP port's contract runs against its fake, pyftpdlib (FTP and FTPS) and vsftpd (FTP and FTPS).
FTP_SIDES = ["fake", "ftp", "ftps", "vsftpd", "vsftpd-ftps"]
_SERVER_OF_SIDE = {
    "ftp": "ftp_server",
    "ftps": "ftps_server",
    "vsftpd": "vsftpd_server",
    "vsftpd-ftps": "vsftpds_server",
}


def ftp_side(request: Any, fake: Callable[[], Any], real: Callable[..., Any]) -> Any:
    """The side a ``params=FTP_SIDES`` fixture stands for: the fake, or ``real`` over a live server."""
    if request.param == "fake":
        return fake()
    server = request.getfixturevalue(_SERVER_OF_SIDE[request.param])
    if server.tls:
        return real(server, request.getfixturevalue("client_tls_context"))
    return real(server)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


SMTP_USER, SMTP_PASSWORD = "mailer", "secret-smtp"


@pytest.fixture
def smtps_server(certificate: Path) -> Iterator[SmtpServer]:
    """SMTP over TLS from the first byte (smtps://), with AUTH, certificate signed by the run's CA."""
    server = SmtpServer(tls="smtps", certfile=certificate, user=SMTP_USER, password=SMTP_PASSWORD).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def starttls_server(certificate: Path) -> Iterator[SmtpServer]:
    """SMTP that requires STARTTLS before AUTH and MAIL (smtp://…?starttls=true)."""
    server = SmtpServer(tls="starttls", certfile=certificate, user=SMTP_USER, password=SMTP_PASSWORD).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ssh_server() -> Iterator[Any]:
    from warehouse_devstack.servers import SshServer

    directory = Path(tempfile.mkdtemp(prefix="warehouse-sshd-"))
    server = SshServer(directory).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(str(directory), ignore_errors=True)


@pytest.fixture(scope="session")
def recording_ssh_account(ssh_server: Any) -> Iterator[Any]:
    """An account on ``ssh_server`` whose login shell records every command it is asked to run
    (``.commands()``); ``.url(ssh_server)`` logs it in with the server's user key. Needs root."""
    from warehouse_devstack.servers import RecordingShellAccount

    if os.geteuid() != 0:
        pytest.skip("creating a local account needs root")
    directory = Path(tempfile.mkdtemp(prefix="warehouse-sshd-recording-"))
    account = RecordingShellAccount(directory, ssh_server.directory / "user_key.pub").create()
    try:
        yield account
    finally:
        account.remove()
        shutil.rmtree(str(directory), ignore_errors=True)


@pytest.fixture(scope="session")
def impostor_ssh_server(ssh_server: Any) -> Iterator[Any]:
    """A second sshd with a host key of its own that lets the same user in with the same key:
    what a man in the middle between the service and the log server looks like."""
    from warehouse_devstack.servers import SshServer

    directory = Path(tempfile.mkdtemp(prefix="warehouse-sshd-impostor-"))
    for name in ("user_key", "user_key.pub"):
        shutil.copy(str(ssh_server.directory / name), str(directory / name))
    server = SshServer(directory).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(str(directory), ignore_errors=True)
