"""Real servers on loopback for the tests and the local stack: PostgreSQL, FTP/FTPS, vsftpd, SMTP, sshd.

One implementation serves the contract tests, the integration tests and ``make run``. Each
server starts on a free port and stops cleanly; none of them is for production.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set

from warehouse_core.endpoints import FtpEndpoint

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on 127.0.0.1:{} after {} s".format(port, timeout))


# --- PostgreSQL ----------------------------------------------------------------------------


def postgres_bin() -> Path:
    for candidate in PG_BIN_CANDIDATES:
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql")


class PostgresCluster:
    """A throwaway cluster in ``directory`` (kept if it exists), as the postgres user when root."""

    def __init__(self, directory: Path, port: Optional[int] = None) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.bin = postgres_bin()
        self.as_root = os.geteuid() == 0

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "postgres") -> str:
        return "postgresql://postgres@127.0.0.1:{}/{}".format(self.port, database)

    def _run(self, *command: str) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        return subprocess.run(
            prefix + list(command), check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def _options(self) -> str:
        return "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off".format(
            self.port, self.directory
        )

    def restart(self) -> None:
        """A fast restart: every connection is cut, as when the server crashes or is upgraded."""
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "-l",
            str(self.directory / "postgres.log"),
            "-o",
            self._options(),
            "restart",
        )

    def start(self) -> "PostgresCluster":
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            postgres = pwd.getpwnam("postgres")
            os.chown(str(self.directory), postgres.pw_uid, postgres.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.directory / "postgres.log"),
            "-o",
            self._options(),
            "start",
        )
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            except subprocess.CalledProcessError:
                pass

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                connection.execute('CREATE DATABASE "{}"'.format(name.replace('"', "")))
        return self.url(name)


def load_invoice_view(url: str, sql_file: Path) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql_file.read_text(encoding="utf-8").encode("utf-8"))


# --- TLS certificate -----------------------------------------------------------------------


class CertificateAuthority:
    """A private CA made for one run, and server certificates it signs for 127.0.0.1 and localhost.

    Clients trust the CA's own certificate (``cafile``), never a server's leaf: a certificate that
    another CA signed, or a self-signed one, is refused, as a real client would refuse it.
    """

    def __init__(self, directory: Path, name: str = "warehouse test CA") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.timezone.utc)
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(certificate_signing=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.cafile = self.directory / "ca.pem"
        self.cafile.write_bytes(_pem(self._certificate))

    def issue(self, name: str = "server") -> Path:
        """A new key and a certificate for 127.0.0.1 and localhost signed by this CA, in one PEM
        file (key, then certificate) as pyftpdlib, vsftpd and aiosmtpd read it."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(certificate_signing=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        path = self.directory / "{}.pem".format(name)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            + _pem(certificate)
        )
        return path

    def client_context(self) -> Any:
        """A client TLS context that trusts this CA only, with host names checked."""
        import ssl

        return ssl.create_default_context(cafile=str(self.cafile))


def _pem(certificate: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _key_usage(*, certificate_signing: bool) -> Any:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificate_signing,
        crl_sign=certificate_signing,
        encipher_only=False,
        decipher_only=False,
    )


# --- FTP -----------------------------------------------------------------------------------


@dataclass
class FtpFaults:
    """Faults the test FTP server injects: commands answered 550, transfers cut after K bytes."""

    refuse: Set[str] = field(default_factory=set)
    unsupported: Set[str] = field(default_factory=set)
    short_retr_after: Optional[int] = None
    drop_retr_after: Optional[int] = None
    drop_stor: bool = False
    # Commands that get no answer until ``release`` is set (or 60 s pass): a process can be
    # killed at a known point of its conversation with the server.
    hang_on: Set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    hanging: threading.Event = field(default_factory=threading.Event)
    # Commands before which the server ends the control connection, once each, as its idle
    # timeout does: with "421" (pyftpdlib's and vsftpd's way), or without a word (a NAT's).
    time_out_before: Set[str] = field(default_factory=set)
    drop_before: Set[str] = field(default_factory=set)
    # Commands carried out whose answer never comes: the connection ends instead (once each).
    drop_answer_to: Set[str] = field(default_factory=set)


def _handler_class(tls: bool, faults: FtpFaults) -> Any:
    from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler

    base = TLS_FTPHandler if tls else FTPHandler

    class FaultyHandler(base):  # type: ignore[misc, valid-type]
        def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
            if cmd in faults.refuse:
                self.respond("550 Refused by the test server.")
                return
            if cmd in faults.unsupported:
                self.respond("502 Command not implemented.")
                return
            if cmd in faults.hang_on:
                faults.hanging.set()
                faults.release.wait(60)
            if cmd in faults.time_out_before:
                faults.time_out_before.discard(cmd)
                self.respond("421 Control connection timed out.")
                self.close_when_done()
                return
            if cmd in faults.drop_before:
                faults.drop_before.discard(cmd)
                self.close()
                return
            if cmd in faults.drop_answer_to:
                faults.drop_answer_to.discard(cmd)
                self._drop_answer = True
            super().pre_process_command(line, cmd, arg)

        def ftp_RETR(self, file: str) -> Any:
            limit = faults.short_retr_after if faults.short_retr_after is not None else faults.drop_retr_after
            if limit is None:
                return super().ftp_RETR(file)
            with open(file, "rb") as source:
                data = source.read(limit)
            truncated = Path(tempfile.mkdtemp()) / "short"
            truncated.write_bytes(data)
            self._drop_at_end = faults.drop_retr_after is not None
            return super().ftp_RETR(str(truncated))

        def respond(self, resp: str, logfun: Any = None) -> None:
            if getattr(self, "_drop_answer", False):
                self._drop_answer = False
                self.close()
                return
            if getattr(self, "_drop_at_end", False) and resp.startswith("226"):
                # The connection vanishes instead of confirming the transfer.
                self._drop_at_end = False
                self.close()
                return
            if logfun is None:
                super().respond(resp)
            else:
                super().respond(resp, logfun)

        def ftp_STOR(self, file: str, mode: str = "w") -> Any:
            if faults.drop_stor:
                self.close()
                return None
            return super().ftp_STOR(file, mode)

    return FaultyHandler


class FtpServer:
    """pyftpdlib on 127.0.0.1 in a thread; ``tls`` makes it explicit FTPS with TLS required on both channels."""

    def __init__(
        self,
        root: Path,
        *,
        user: str = "warehouse",
        password: str = "secret-ftp",
        tls: bool = False,
        certfile: Optional[Path] = None,
        port: int = 0,
        idle_timeout: int = 30,
    ) -> None:
        self.root = Path(root)
        self.idle_timeout = idle_timeout
        self.user = user
        self.password = password
        self.tls = tls
        self.certfile = certfile
        self.requested_port = port
        self.faults = FtpFaults()
        self._server: Any = None
        self._thread: Optional[threading.Thread] = None
        self.port = 0

    def start(self) -> "FtpServer":
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.ioloop import IOLoop
        from pyftpdlib.servers import ThreadedFTPServer

        self.root.mkdir(parents=True, exist_ok=True)
        authorizer = DummyAuthorizer()
        authorizer.add_user(self.user, self.password, str(self.root), perm="elradfmwMT")
        handler = _handler_class(self.tls, self.faults)
        handler.authorizer = authorizer
        handler.passive_ports = None
        handler.timeout = self.idle_timeout
        handler.auth_failed_timeout = 0.1
        handler.banner = "warehouse test FTP server"
        if self.tls:
            assert self.certfile is not None, "FTPS needs a certificate"
            handler.certfile = str(self.certfile)
            handler.tls_control_required = True
            handler.tls_data_required = True
        # An IOLoop of its own: pyftpdlib's default is one per process, shared by every server in it.
        self._server = ThreadedFTPServer(("127.0.0.1", self.requested_port), handler, ioloop=IOLoop())
        self._server.max_cons = 64
        self.port = self._server.address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"timeout": 0.2, "blocking": True}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close_all()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def url(self, directory: str = "/") -> str:
        return "{}://{}:{}@127.0.0.1:{}{}".format(
            "ftps" if self.tls else "ftp", self.user, self.password, self.port, directory
        )

    def endpoint(self, directory: str = "/") -> FtpEndpoint:
        return FtpEndpoint(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password, directory=directory, tls=self.tls
        )

    def files(self) -> List[str]:
        return sorted(path.name for path in self.root.iterdir() if path.is_file())

    def refuse(self, command: str) -> None:
        """Answer 550 to every ``command`` from now on."""
        self.faults.refuse.add(command)


# --- vsftpd --------------------------------------------------------------------------------

VSFTPD = Path("/usr/sbin/vsftpd")
# Passive ports are drawn below the kernel's ephemeral range (32768 and up here), where port 0
# binds of other tests never land; vsftpd itself retries another port of its range when one is taken.
PASSIVE_PORTS_LOW, PASSIVE_PORTS_HIGH, PASSIVE_PORTS_PER_SERVER = 20000, 32000, 20


def vsftpd_missing_reason() -> Optional[str]:
    """Why the vsftpd side cannot run here, or None when it can."""
    if not VSFTPD.exists():
        return "vsftpd is not installed (apt-get install -y vsftpd)"
    if os.geteuid() != 0:
        return "vsftpd needs root: it logs a local system account in through PAM"
    return None


def free_port_range(count: int) -> int:
    """The first of ``count`` consecutive ports free now, drawn at random so that servers started
    together (by other tests or other processes) rarely share a range."""
    import random

    for _ in range(200):
        first = random.randrange(PASSIVE_PORTS_LOW, PASSIVE_PORTS_HIGH - count)
        probes: List[socket.socket] = []
        try:
            for port in range(first, first + count):
                probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError(
        "no {} consecutive free ports between {} and {}".format(count, PASSIVE_PORTS_LOW, PASSIVE_PORTS_HIGH)
    )


class SystemFtpAccount:
    """A throwaway local user with a random password: vsftpd logs real accounts in through PAM."""

    def __init__(self) -> None:
        import secrets

        self.user = "whftp" + secrets.token_hex(4)
        self.password = secrets.token_urlsafe(12)
        self.created = False

    def create(self) -> "SystemFtpAccount":
        # Home "/": vsftpd changes into it before local_root; /bin/sh passes Debian's pam_shells.
        subprocess.run(["useradd", "-M", "-d", "/", "-s", "/bin/sh", self.user], check=True)
        self.created = True
        subprocess.run(["chpasswd"], input="{}:{}\n".format(self.user, self.password), text=True, check=True)
        return self

    def remove(self) -> None:
        if self.created:
            subprocess.run(["userdel", self.user], check=False, stderr=subprocess.DEVNULL)
            self.created = False


class VsftpdServer:
    """Debian's vsftpd on 127.0.0.1 as a child process: plain FTP, or explicit FTPS with TLS on both
    channels and vsftpd's default ``require_ssl_reuse=YES``. The files live in ``root``, owned by
    the account; a passive port range of its own is picked at every start."""

    def __init__(
        self,
        directory: Path,
        account: SystemFtpAccount,
        *,
        tls: bool = False,
        certfile: Optional[Path] = None,
        keyfile: Optional[Path] = None,
    ) -> None:
        self.directory = Path(directory)
        self.root = self.directory / "root"
        self.account = account
        self.user = account.user
        self.password = account.password
        self.tls = tls
        self.certfile = certfile
        self.keyfile = keyfile or certfile
        self.port = 0
        self._process: Optional[subprocess.Popen] = None

    def _config(self, passive_first: int) -> str:
        lines = [
            "listen=YES",
            "listen_address=127.0.0.1",
            "listen_port={}".format(self.port),
            "background=NO",
            "anonymous_enable=NO",
            "local_enable=YES",
            "write_enable=YES",
            "local_umask=022",
            "local_root={}".format(self.root),
            "pam_service_name=vsftpd",
            # seccomp filters break vsftpd inside containers; the test server is loopback-only.
            "seccomp_sandbox=NO",
            "delay_failed_login=0",
            "pasv_enable=YES",
            "pasv_min_port={}".format(passive_first),
            "pasv_max_port={}".format(passive_first + PASSIVE_PORTS_PER_SERVER - 1),
            "vsftpd_log_file={}".format(self.directory / "vsftpd.log"),
            "xferlog_enable=YES",
            "log_ftp_protocol=YES",
        ]
        if self.tls:
            assert self.certfile is not None, "FTPS needs a certificate"
            lines += [
                "ssl_enable=YES",
                "rsa_cert_file={}".format(self.certfile),
                "rsa_private_key_file={}".format(self.keyfile),
                "force_local_logins_ssl=YES",
                "force_local_data_ssl=YES",
                "require_ssl_reuse=YES",
            ]
        return "\n".join(lines) + "\n"

    def start(self) -> "VsftpdServer":
        reason = vsftpd_missing_reason()
        if reason is not None:
            raise RuntimeError(reason)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o755)  # the account must reach its root
        self.root.mkdir(exist_ok=True)
        os.chown(str(self.root), pwd.getpwnam(self.user).pw_uid, -1)
        Path("/var/run/vsftpd/empty").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = self.directory / "vsftpd.conf"
        config.write_text(self._config(free_port_range(PASSIVE_PORTS_PER_SERVER)))
        # A session of its own: stop() ends the listener and every per-connection child it forked.
        self._process = subprocess.Popen(
            [str(VSFTPD), str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_for_port(self.port, timeout=10)
        except RuntimeError:
            output = self._stop_and_collect()
            raise RuntimeError("vsftpd did not start: " + output) from None
        return self

    def _stop_and_collect(self) -> str:
        process, self._process = self._process, None
        if process is None:
            return ""
        try:
            os.killpg(process.pid, 15)
        except ProcessLookupError:
            pass
        try:
            output, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            output, _ = process.communicate()
        return (output or b"").decode("utf-8", "replace").strip()

    def stop(self) -> None:
        self._stop_and_collect()

    def url(self, directory: str = "/") -> str:
        return "{}://{}:{}@127.0.0.1:{}{}".format(
            "ftps" if self.tls else "ftp", self.user, self.password, self.port, directory
        )

    def endpoint(self, directory: str = "/") -> FtpEndpoint:
        # local_root is vsftpd's start folder; the path of a URL is relative to it.
        return FtpEndpoint(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password, directory=directory, tls=self.tls
        )

    def files(self) -> List[str]:
        return sorted(path.name for path in self.root.iterdir() if path.is_file())

    def refuse(self, command: str) -> None:
        """Make vsftpd itself refuse ``command`` with its own 55x reply, through file permissions:
        RETR for the files present now, or DELE, STOR and RNFR for the whole folder."""
        if command == "RETR":
            for path in self.root.iterdir():
                path.chmod(0)
        elif command in ("DELE", "STOR", "RNFR"):
            self.root.chmod(0o555)
        else:
            raise ValueError("vsftpd cannot be made to refuse {} alone".format(command))

    def protocol_log(self) -> str:
        log = self.directory / "vsftpd.log"
        return log.read_text(errors="replace") if log.exists() else ""


# --- SMTP ----------------------------------------------------------------------------------


class _KeepMail:
    def __init__(self, server: "SmtpServer") -> None:
        self.server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        self.server.keep(raw, list(envelope.rcpt_tos))
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        return self.server.quit_reply


class SmtpServer:
    """aiosmtpd on 127.0.0.1; every message is kept in ``messages`` and, with a folder, as a .eml file.

    ``tls``: None (plain), ``"smtps"`` (TLS from the first byte) or ``"starttls"`` (required before
    MAIL), with ``certfile`` as key and certificate. With ``user`` and ``password``, AUTH is
    offered and a wrong password is answered 535 as a real server does.

    ``quit_reply`` is the answer to QUIT: set it to an error to play a server that fails after it
    has taken the mail.
    """

    def __init__(
        self,
        folder: Optional[Path] = None,
        port: int = 0,
        *,
        tls: Optional[str] = None,
        certfile: Optional[Path] = None,
        user: Optional[str] = None,
        password: Optional[str] = None,
    ) -> None:
        assert tls in (None, "smtps", "starttls"), tls
        assert tls is None or certfile is not None, "TLS needs a certificate"
        self.folder = Path(folder) if folder else None
        self.port = port or free_port()
        self.tls = tls
        self.certfile = certfile
        self.user = user
        self.password = password
        self.messages: List[EmailMessage] = []
        self.recipients: List[List[str]] = []
        self.quit_reply = "221 Bye"
        self._lock = threading.Lock()
        self._controller: Any = None

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode("utf-8", "replace") == self.user
            and auth_data.password.decode("utf-8", "replace") == self.password
        )
        return AuthResult(success=ok, handled=False)

    def keep(self, raw: bytes, recipients: List[str]) -> None:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.recipients.append(recipients)
            if self.folder is not None:
                self.folder.mkdir(parents=True, exist_ok=True)
                stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
                (self.folder / "{}-{}.eml".format(stamp, message.get("X-Warehouse-Event", "mail"))).write_bytes(raw)

    def start(self) -> "SmtpServer":
        from aiosmtpd.controller import Controller

        options: Dict[str, Any] = {}
        if self.tls is not None:
            import ssl

            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.certfile))
            if self.tls == "smtps":
                options["ssl_context"] = context
            else:
                options.update(tls_context=context, require_starttls=True)
        if self.user is not None:
            # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; smtps:// is TLS from the
            # first byte, and plain smtp:// with AUTH is what the client must refuse on its own.
            options.update(authenticator=self._authenticate, auth_require_tls=self.tls == "starttls")
        self._controller = Controller(
            _KeepMail(self), hostname="127.0.0.1", port=self.port, ready_timeout=10, **options
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def url(self, password: Optional[str] = None) -> str:
        """The service's WAREHOUSE_SMTP_URL for this server (``password`` overrides the right one)."""
        credentials = ""
        if self.user is not None:
            credentials = "{}:{}@".format(self.user, self.password if password is None else password)
        return "{}://{}127.0.0.1:{}{}".format(
            "smtps" if self.tls == "smtps" else "smtp",
            credentials,
            self.port,
            "?starttls=true" if self.tls == "starttls" else "",
        )

    def events(self) -> List[str]:
        with self._lock:
            return [str(message.get("X-Warehouse-Event")) for message in self.messages]

    def by_event(self, event: str) -> List[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if m.get("X-Warehouse-Event") == event]


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


# --- OpenSSH sshd --------------------------------------------------------------------------

SSHD = Path("/usr/sbin/sshd")


class SshServer:
    """OpenSSH's sshd on 127.0.0.1 with a throwaway host key and user key (SFTP for fs.sshfs)."""

    def __init__(self, directory: Path, port: int = 0, extra_host_key_types: Sequence[str] = ()) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        # Real servers hold several host keys (ed25519, ecdsa, rsa): "host_key" is the ed25519 one,
        # "host_key_<type>" the others.
        self.extra_host_key_types = tuple(extra_host_key_types)
        self._process: Optional[subprocess.Popen] = None

    @property
    def user_key(self) -> Path:
        return self.directory / "user_key"

    def start(self) -> "SshServer":
        if not SSHD.exists():
            raise RuntimeError("OpenSSH server not installed (apt-get install -y openssh-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        for key in ("host_key", "user_key"):
            if not (self.directory / key).exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.directory / key)], check=True
                )
        for key_type in self.extra_host_key_types:
            if not (self.directory / ("host_key_" + key_type)).exists():
                subprocess.run(
                    [
                        "ssh-keygen",
                        "-q",
                        "-t",
                        key_type,
                        "-N",
                        "",
                        "-f",
                        str(self.directory / ("host_key_" + key_type)),
                    ],
                    check=True,
                )
        authorized = self.directory / "authorized_keys"
        authorized.write_bytes((self.directory / "user_key.pub").read_bytes())
        authorized.chmod(0o600)
        config = self.directory / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    "Port {}".format(self.port),
                    "ListenAddress 127.0.0.1",
                    "HostKey {}".format(self.directory / "host_key"),
                ]
                + ["HostKey {}".format(self.directory / ("host_key_" + t)) for t in self.extra_host_key_types]
                + [
                    # The second file: the keys of a RecordingShellAccount, which sshd reads as that user.
                    "AuthorizedKeysFile {} %h/{}".format(authorized, RecordingShellAccount.AUTHORIZED_KEYS),
                    "PidFile {}".format(self.directory / "sshd.pid"),
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [str(SSHD), "-D", "-f", str(config), "-E", str(self.directory / "sshd.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port)
        except RuntimeError:
            self.stop()
            log = self.directory / "sshd.log"
            raise RuntimeError("sshd did not start: " + (log.read_text() if log.exists() else "no log")) from None
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None

    def url(self) -> str:
        return "ssh://{}@127.0.0.1:{}/?pkey={}".format(self.user, self.port, self.user_key)

    def host_key_fingerprint(self, key_type: str = "ed25519") -> str:
        """A host key's ``SHA256:…`` fingerprint, as ``ssh-keygen -lf`` prints it."""
        name = "host_key" if key_type == "ed25519" else "host_key_" + key_type
        listed = subprocess.run(
            ["ssh-keygen", "-lf", str(self.directory / (name + ".pub"))],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
        return listed.split()[1]

    def known_hosts_line(self) -> str:
        """This server's entry as ``~/.ssh/known_hosts`` would hold it."""
        key_type, key = (self.directory / "host_key.pub").read_text().split()[:2]
        return "[127.0.0.1]:{} {} {}".format(self.port, key_type, key)


class RecordingShellAccount:
    """A throwaway local user for an ``SshServer`` whose login shell records every command the
    account is asked to run (sshd runs an exec request as ``<shell> -c <command>``), then runs it
    with /bin/sh. SFTP through ``internal-sftp`` does not go through the shell: a client that only
    reads files over SFTP leaves the record empty."""

    AUTHORIZED_KEYS = "warehouse_authorized_keys"

    def __init__(self, directory: Path, public_key: Path) -> None:
        import secrets

        self.directory = Path(directory)
        self.public_key = Path(public_key)
        self.user = "whlog" + secrets.token_hex(4)
        self.record = self.directory / "commands.log"
        self.created = False

    def create(self) -> "RecordingShellAccount":
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o755)
        shell = self.directory / "recording-shell"
        shell.write_text(
            "#!/bin/sh\n"
            "# The login shell of a recording account: what it is asked to run, then run it.\n"
            "printf '%s\\n' \"$*\" >> {record}\n"
            'exec /bin/sh "$@"\n'.format(record=shlex.quote(str(self.record)))
        )
        shell.chmod(0o755)
        self.record.write_text("")
        self.record.chmod(0o666)
        subprocess.run(["useradd", "-M", "-d", str(self.directory), "-s", str(shell), self.user], check=True)
        self.created = True
        # Not locked ("!"), which sshd without PAM refuses even for a key; no password either.
        subprocess.run(["usermod", "-p", "*", self.user], check=True)
        authorized = self.directory / self.AUTHORIZED_KEYS
        authorized.write_bytes(self.public_key.read_bytes())
        shutil.chown(str(authorized), user=self.user)
        authorized.chmod(0o600)
        return self

    def url(self, server: "SshServer") -> str:
        """``server``'s URL with this account as the user (the server's user key logs it in)."""
        return server.url().replace("ssh://{}@".format(server.user), "ssh://{}@".format(self.user), 1)

    def commands(self) -> List[str]:
        return self.record.read_text().splitlines()

    def remove(self) -> None:
        if self.created:
            subprocess.run(["userdel", self.user], check=False, stderr=subprocess.DEVNULL)
            self.created = False


# --- the customer's remote importer ----------------------------------------------------------


class RemoteImporter:
    """A stand-in for the customer's importer: reads each export that appears in the outbound
    folder and appends a line to its log. ``mode``: ok, error, wrong-count or silent."""

    def __init__(
        self, folder: Path, log_file: Path, mode: str = "ok", interval: float = 0.1, delay: float = 0.0
    ) -> None:
        self.delay = delay
        self.folder = Path(folder)
        self.log_file = Path(log_file)
        self.mode = mode
        self.interval = interval
        self.seen: Dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "RemoteImporter":
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="remote-importer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for path in sorted(self.folder.iterdir()):
                if path.name.startswith(".") or not path.is_file():
                    continue
                stat = path.stat()
                if self.seen.get(path.name) == stat.st_mtime_ns:
                    continue
                self.seen[path.name] = stat.st_mtime_ns
                self.read(path)

    def read(self, path: Path) -> None:
        if self._stop.wait(self.delay):
            return
        with open(path, "rb") as handle:
            records = sum(1 for _ in handle)
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        line = {
            "ok": "{} INFO {}: {} records read".format(stamp, path.name, records),
            "wrong-count": "{} INFO {}: {} records read".format(stamp, path.name, max(records - 1, 0)),
            "error": "{} ERROR {}: ERROR line 2: unknown customer".format(stamp, path.name),
        }.get(self.mode)
        if line is not None:
            with open(self.log_file, "a", encoding="utf-8") as log_file:
                log_file.write(line + "\n")
