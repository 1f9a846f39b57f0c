"""The inbound (and outbound) FTP servers through ftplib: ftp:// or ftps:// with explicit TLS and PROT P."""

from __future__ import annotations

import ftplib
import logging
import re
import ssl
from contextlib import contextmanager
from typing import Any, BinaryIO, Callable, Iterator, List, Optional

from warehouse_core.endpoints import FtpEndpoint
from warehouse_core.errors import TransferError
from warehouse_core.model import RemoteFile

log = logging.getLogger(__name__)
BLOCK_SIZE = 64 * 1024
# The consumer ignores dot files; the final name appears only by rename, complete.
TEMPORARY_PREFIX = "."


class SessionReusingFTP_TLS(ftplib.FTP_TLS):
    """Explicit FTPS whose data connections resume the control connection's TLS session.

    vsftpd (``require_ssl_reuse=YES``, its default) and other servers refuse a data channel with
    a fresh TLS session (``522 SSL connection failed: session reuse required``): the reuse proves
    that the data connection comes from the client that logged in, not from someone who raced
    to the passive port.
    """

    def ntransfercmd(self, cmd: str, rest: Any = None) -> Any:
        connection, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            connection = self.context.wrap_socket(
                connection,
                server_hostname=self.host,
                session=self.sock.session,  # type: ignore[union-attr]
            )
        return connection, size


class FtpConnection:
    """A logged-in ftplib client in the configured folder; every failure becomes TransferError.

    ``log_on`` gives a new client when the server has ended this one's connection, as its idle
    timeout does while a big file is imported between the download and the DELE."""

    def __init__(self, client: ftplib.FTP, where: str, log_on: Optional[Callable[[], ftplib.FTP]] = None) -> None:
        self.client = client
        self.where = where
        self._log_on = log_on

    def list_files(self) -> List[RemoteFile]:
        """MLSD when the server has it; else LIST in the Unix ``ls -l`` form that vsftpd, ProFTPD
        and pure-ftpd write (it tells files from folders); else NLST and SIZE for each name."""
        try:
            return self._mlsd()
        except ftplib.error_perm as error:
            if not _not_implemented(error):
                raise TransferError(self._explain("MLSD", error)) from None
        lines: List[str] = []
        listed: Optional[List[RemoteFile]] = None
        try:
            self.client.retrlines("LIST", lines.append)
            listed = _unix_listing(lines)
        except ftplib.error_perm as error:
            if not _not_implemented(error):
                raise TransferError(self._explain("LIST", error)) from None
        except ftplib.all_errors as error:
            raise TransferError(self._explain("LIST", error)) from None
        if listed is not None:
            return listed
        log.info("%s has neither MLSD nor a Unix LIST: listing with NLST and SIZE", self.where)
        with self._errors("NLST"):
            names = [name.rsplit("/", 1)[-1] for name in self.client.nlst()]
        return [RemoteFile(name=name, size=self.size(name)) for name in names if name not in (".", "..")]

    def _mlsd(self) -> List[RemoteFile]:
        files = []
        try:
            entries = list(self.client.mlsd(facts=["type", "size"]))
        except ftplib.error_perm:
            raise
        except ftplib.all_errors as error:
            raise TransferError(self._explain("MLSD", error)) from None
        for name, facts in entries:
            if facts.get("type", "file") != "file":
                continue
            size = facts.get("size")
            files.append(RemoteFile(name=name, size=int(size) if size and size.isdigit() else None))
        return files

    def size(self, name: str) -> Optional[int]:
        try:
            self.client.voidcmd("TYPE I")
            size = self.client.size(name)
        except ftplib.error_perm:
            return None
        except ftplib.all_errors as error:
            raise TransferError(self._explain("SIZE " + name, error)) from None
        return int(size) if size is not None else None

    def download(self, name: str, write: Callable[[bytes], None]) -> int:
        received = [0]

        def count_and_write(block: bytes) -> None:
            received[0] += len(block)
            write(block)

        with self._errors("RETR " + name):
            self.client.retrbinary("RETR " + name, count_and_write, blocksize=BLOCK_SIZE)
        return received[0]

    def store(self, name: str, source: BinaryIO) -> None:
        with self._errors("STOR " + name):
            self.client.storbinary("STOR " + name, source, blocksize=BLOCK_SIZE)

    def rename(self, source: str, target: str) -> None:
        with self._errors("RNFR/RNTO {} {}".format(source, target)):
            self.client.rename(source, target)

    def delete(self, name: str) -> None:
        try:
            self.client.delete(name)
            return
        except ftplib.all_errors as error:
            if self._log_on is None or not _connection_lost(error):
                raise TransferError(self._explain("DELE " + name, error)) from None
            log.info("%s; logging on again", self._explain("DELE " + name, error))
        self._log_on_again()
        # The first DELE may have been carried out before the connection went: no such file is then done.
        if not self.delete_if_present(name):
            log.info("%s was no longer on %s", name, self.where)

    def _log_on_again(self) -> None:
        assert self._log_on is not None
        lost, self.client = self.client, self._log_on()  # when that fails, the lost one is closed at the end
        lost.close()

    def delete_if_present(self, name: str) -> bool:
        """DELE, where 550 (no such file) is no error; whether a file was deleted."""
        try:
            self.client.delete(name)
        except ftplib.error_perm as error:
            if str(error).startswith("550"):
                return False
            raise TransferError(self._explain("DELE " + name, error)) from None
        except ftplib.all_errors as error:
            raise TransferError(self._explain("DELE " + name, error)) from None
        return True

    @contextmanager
    def _errors(self, command: str) -> Iterator[None]:
        try:
            yield
        except ftplib.all_errors as error:
            raise TransferError(self._explain(command, error)) from None

    def _explain(self, command: str, error: BaseException) -> str:
        detail = str(error).strip() or type(error).__name__
        return "{} on {} failed: {}".format(command, self.where, detail)


def _not_implemented(error: BaseException) -> bool:
    return str(error).startswith(("500", "501", "502", "504"))


def _connection_lost(error: BaseException) -> bool:
    """The server ended the control connection (421, as an idle timeout answers), or it is gone."""
    return isinstance(error, (EOFError, OSError)) or str(error).startswith("421")


# ``-rw-r--r--    1 1001     1001         1234 Nov 27 13:08 name`` (or ``Jan 02  2025`` for an
# older file): type and mode, links, owner, group, size, English month, day, time or year, then
# exactly one space and the name, spaces included. Anything else (ISO dates, the day before the
# month, no group) is another form, whose ninth field need not start the name.
_LS_LINE = re.compile(
    r"(?P<type>[-dlbcps])[-rwxsStTl]{9}[+.@]?\s+\d+\s+\S+\s+\S+\s+(?P<size>\d+)\s+"
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+\d{1,2}\s+(?:\d{1,2}:\d{2}|\d{4}) (?P<name>.+)"
)


def _unix_listing(lines: List[str]) -> Optional[List[RemoteFile]]:
    """The plain files of an ``ls -l`` style listing, or None when a line has another form
    (NLST and SIZE then decide, which never mistake one name for another)."""
    files = []
    for line in lines:
        if not line.strip() or line.startswith("total "):
            continue
        match = _LS_LINE.fullmatch(line)
        if match is None:
            return None
        if match.group("type") == "-":
            files.append(RemoteFile(name=match.group("name"), size=int(match.group("size"))))
    return files


def _temporary(name: str) -> str:
    return TEMPORARY_PREFIX + name + ".part"


def _set_aside(name: str) -> str:
    """Where a Close puts the temporary file of ``name`` so that no rename can follow."""
    return _temporary(name) + ".closed"


def _present(connection: FtpConnection, *names: str) -> bool:
    """Whether any of ``names`` is on the server: SIZE of each, else one listing for all."""
    if any(connection.size(name) is not None for name in names):
        return True
    return any(remote.name in names for remote in connection.list_files())


def _stored_size(connection: FtpConnection, name: str) -> int:
    """The size the server holds of ``name``: SIZE, else the listing (SIZE is an extension; MLSD
    and LIST show a dot-file such as our temporary name on most servers)."""
    size = connection.size(name)
    if size is None:
        size = next((remote.size for remote in connection.list_files() if remote.name == name), None)
    if size is None:
        raise TransferError(
            "STOR {} on {}: neither SIZE nor a listing tells the size the server holds, so the upload cannot "
            "be checked before its rename".format(name, connection.where)
        )
    return size


class FtplibFiles:
    """Connects per use; ``tls`` means explicit FTPS (AUTH TLS) with a protected data channel."""

    def __init__(
        self,
        *,
        host: str,
        port: int = 21,
        user: str = "anonymous",
        password: str = "",
        directory: str = "/",
        tls: bool = False,
        timeout: float = 30.0,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.directory = directory
        self.tls = tls
        self.timeout = timeout
        self.ssl_context = ssl_context

    @classmethod
    def from_endpoint(
        cls, endpoint: FtpEndpoint, timeout: float, ssl_context: Optional[ssl.SSLContext] = None
    ) -> "FtplibFiles":
        return cls(
            host=endpoint.host,
            port=endpoint.port,
            user=endpoint.user,
            password=endpoint.password,
            directory=endpoint.directory,
            tls=endpoint.tls,
            timeout=timeout,
            ssl_context=ssl_context,
        )

    def describe(self) -> str:
        return "{}://{}@{}:{}{}".format("ftps" if self.tls else "ftp", self.user, self.host, self.port, self.directory)

    def upload(
        self, name: str, open_local: Callable[[], BinaryIO], before_rename: Optional[Callable[[], None]] = None
    ) -> None:
        """STOR under a temporary name, check the size the server reports, ask ``before_rename``
        (when it raises, the error goes on and the temporary file stays for the caller to remove:
        once the rename may have been asked for, only the caller knows), then rename into place."""
        temporary = _temporary(name)
        with open_local() as source:
            source.seek(0, 2)
            size = source.tell()
            source.seek(0)
            with self.connect() as connection:
                connection.store(temporary, source)
                stored = _stored_size(connection, temporary)
                if stored != size:
                    raise TransferError(
                        "STOR {} on {}: the server holds {} bytes of {}".format(
                            temporary, connection.where, stored, size
                        )
                    )
                if before_rename is not None:
                    before_rename()
                connection.rename(temporary, name)

    def size(self, name: str) -> Optional[int]:
        """SIZE of the final file, else its size in the listing; None when it is not there."""
        with self.connect() as connection:
            size = connection.size(name)
            if size is not None:
                return size
            for remote in connection.list_files():
                if remote.name == name:
                    return remote.size
        return None

    def temporary_present(self, name: str) -> bool:
        """Whether the temporary file, or the one a Close set aside, is there: SIZE first, else the
        listing (a server may hide dot files from LIST; vsftpd, ProFTPD and pure-ftpd answer SIZE)."""
        with self.connect() as connection:
            return _present(connection, _temporary(name), _set_aside(name))

    def fence(self, name: str) -> bool:
        """RNFR/RNTO of the temporary file to its set-aside name: atomic against the worker's own
        rename, and it leaves evidence behind whatever becomes of the caller."""
        temporary, aside = _temporary(name), _set_aside(name)
        with self.connect() as connection:
            try:
                connection.rename(temporary, aside)
                log.info(
                    "set %s aside as %s on %s: it will not be renamed into place", temporary, aside, connection.where
                )
                return True
            except TransferError as refused:
                if _present(connection, temporary):  # a refusal, not an absence (no right to rename, a busy file)
                    raise TransferError("could not set {} aside: {}".format(temporary, refused)) from None
            return _present(connection, aside)

    def discard(self, name: str) -> bool:
        """Remove the temporary file an unfinished upload of ``name`` left, and one a Close set
        aside; whether there was one."""
        with self.connect() as connection:
            removed = False
            for leftover in (_temporary(name), _set_aside(name)):
                if connection.delete_if_present(leftover):
                    log.info("removed %s, left by an unfinished upload, from %s", leftover, connection.where)
                    removed = True
            return removed

    @contextmanager
    def connect(self) -> Iterator[FtpConnection]:
        connection = FtpConnection(self._log_on(), self.describe(), self._log_on)
        try:
            yield connection
        finally:
            try:
                connection.client.quit()
            except ftplib.all_errors:
                connection.client.close()

    def _log_on(self) -> ftplib.FTP:
        """A client logged in and in the folder; TransferError when that fails."""
        client: ftplib.FTP
        try:
            if self.tls:
                client = SessionReusingFTP_TLS(
                    context=self.ssl_context or ssl.create_default_context(), timeout=self.timeout
                )
            else:
                client = ftplib.FTP(timeout=self.timeout)
            # Our names are ASCII; latin-1 maps every byte, so a listing with names in any other
            # encoding still decodes, and such a name is sent back byte for byte.
            client.encoding = "latin-1"
            client.connect(self.host, self.port)
            client.login(self.user, self.password)
            if isinstance(client, ftplib.FTP_TLS):
                client.prot_p()
            client.set_pasv(True)
            if self.directory not in ("", "/"):
                client.cwd(self.directory)
        except ftplib.all_errors as error:
            raise TransferError(
                "cannot log on to {}: {}".format(self.describe(), str(error).strip() or type(error).__name__)
            ) from None
        return client
