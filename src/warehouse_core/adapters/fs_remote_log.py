"""The remote importer's log through pyfilesystem2: ``ssh://`` (fs.sshfs) or ``osfs://``.

For ``ssh://`` the SSH connection is built here, not by fs.sshfs's URL opener: that one accepts
any host key (paramiko's AutoAddPolicy), trusts ``~/.ssh/known_hosts`` and ``~/.ssh/config`` of
whoever runs the service, and connects to ``gethostbyname(host)``. Here the server's key must be
one of the configured SHA256 fingerprints, checked before any password or key is offered.

The log server is only read (SPEC §4): fs.sshfs asks the server to run ``uname -s``, ``sysinfo``
and ``echo $LANG`` the first time it describes a file (to guess the platform and locale), which a
customer's audit flags and a restricted account refuses. The SSHFS here never does: its platform
and locale are fixed, and it has no way to run a command. Only the SFTP subsystem is opened.

The log is read from an offset in chunks of ``CHUNK_BYTES``, line by line as the caller consumes
them: never the whole log, nor the whole new part, in memory at once.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import posixpath
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from warehouse_core.endpoints import RemoteLogEndpoint
from warehouse_core.errors import ConfigurationError, TransferError

log = logging.getLogger(__name__)
KEEPALIVE_SECONDS = 10
# Host keys asked for before giving up: a server holds one per type (ed25519, ecdsa, rsa, dsa).
MAX_HOST_KEYS = 6
# How much of the log one read asks for: what a read holds in memory, with the longest line.
CHUNK_BYTES = 64 * 1024


def _import_fs() -> None:
    with warnings.catch_warnings():
        # fs 2.4.16 imports pkg_resources, which warns on every start with recent setuptools.
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import fs  # noqa: F401
        import fs.opener  # noqa: F401
        import fs.sshfs  # noqa: F401
    # paramiko logs a refused host key or a lost connection at ERROR with a traceback, from its
    # own thread; the adapter says the same in one line (SPEC §9: one line per decision).
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)


def fingerprint(key: Any) -> str:
    """A paramiko key's fingerprint as ``ssh-keygen -lf`` prints it: ``SHA256:`` and unpadded base64."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


class HostKeyMismatch(TransferError):
    """The SSH server offered a host key that is not one of the configured fingerprints."""

    def __init__(self, message: str, offered: Sequence[Tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.offered = list(offered)  # (fingerprint, key type) of each key the server showed


def _mismatch(where: str, offered: Sequence[Tuple[str, str]], expected: Sequence[str]) -> HostKeyMismatch:
    return HostKeyMismatch(
        "{} offered the host key{} {}, expected {} (WAREHOUSE_REMOTE_LOG_HOST_KEY): "
        "refused without logging in; if the server's key really changed, ask its "
        "administrator for the new fingerprint".format(
            where,
            "s" if len(offered) > 1 else "",
            ", ".join("{} ({})".format(*item) for item in offered),
            ", ".join(expected),
        ),
        offered,
    )


def _host_key_algorithms(key_type: str) -> List[str]:
    """The host key algorithms that would show the same key again: an RSA key under three names."""
    if key_type == "ssh-rsa":
        return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
    return [key_type]


def pinned_host_key_policy(expected: Sequence[str], where: str) -> Any:
    import paramiko

    class PinnedHostKey(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
        """Accepts only the configured fingerprints; asked for every key, since no key is loaded."""

        accepted = False

        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            seen = fingerprint(key)
            if seen not in expected:
                raise _mismatch(where, [(seen, key.get_name())], expected)
            self.accepted = True

    return PinnedHostKey()


def connect_pinned(
    host: str,
    *,
    port: int,
    user: Optional[str],
    password: Optional[str],
    key_file: Optional[str],
    timeout: float,
    host_keys: Sequence[str],
    where: str,
) -> Any:
    """A logged-in ``paramiko.SSHClient`` whose server showed one of ``host_keys``; it reads
    neither ``~/.ssh/known_hosts`` nor ``~/.ssh/config``. Nothing is left open when it raises."""
    import paramiko

    # A server holds several host keys (ed25519, ecdsa, rsa) and shows the one paramiko prefers;
    # when that one is not pinned, ask again with its type left out, so that a pinned rsa key is
    # found. Nothing is sent before a key matches.
    offered: List[Tuple[str, str]] = []
    disabled: List[str] = []
    while True:
        client = paramiko.SSHClient()
        policy = pinned_host_key_policy(host_keys, where)
        client.set_missing_host_key_policy(policy)
        try:
            client.connect(
                host,
                port,
                username=user,
                password=password or None,
                key_filename=key_file,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                # Only the credentials the URL names; the key files of ~/.ssh only when it names none.
                look_for_keys=not (password or key_file),
                allow_agent=False,
                disabled_algorithms={"keys": disabled},
            )
            client.get_transport().set_keepalive(KEEPALIVE_SECONDS)
            return client
        except HostKeyMismatch as mismatch:
            client.close()
            offered += [item for item in mismatch.offered if item not in offered]
            more = [a for _, key_type in mismatch.offered for a in _host_key_algorithms(key_type)]
            if len(offered) >= MAX_HOST_KEYS or all(a in disabled for a in more):
                raise _mismatch(where, offered, host_keys) from None
            disabled += [a for a in more if a not in disabled]
        except paramiko.SSHException:
            client.close()
            if offered and not policy.accepted:  # no host key type left: none of them is pinned
                raise _mismatch(where, offered, host_keys) from None
            raise
        except BaseException:
            client.close()
            raise


_SFTP_ONLY_SSHFS: List[Any] = []


def _sftp_only_sshfs_class() -> Any:
    """``fs.sshfs.SSHFS`` over an SFTP channel alone (made once, after fs is imported)."""
    if _SFTP_ONLY_SSHFS:
        return _SFTP_ONLY_SSHFS[0]
    _import_fs()
    from fs.base import FS
    from fs.errors import Unsupported
    from fs.sshfs.sshfs import SSHFS

    class SftpOnlySSHFS(SSHFS):
        """Never asks the server to run a command: SSHFS probes the platform and the locale with
        ``uname -s``, ``sysinfo`` and ``echo $LANG``; here they are fixed, and running a
        command is refused. SSHFS.__init__ is skipped on purpose (the connection is made by
        ``connect_pinned``); these are the attributes it sets and the rest of SSHFS reads."""

        platform = "unknown"  # what SSHFS answers when it cannot tell; it only names st_ctime
        locale = None  # file names are decoded as UTF-8

        def __init__(self, client: Any, host: str, port: int, user: Optional[str], timeout: float) -> None:
            FS.__init__(self)
            self._user, self._host, self._port = user, host, port
            self._timeout = self._exec_timeout = timeout
            self._client = client
            try:
                self._sftp = client.open_sftp()
                self._sftp.get_channel().settimeout(timeout)
            except BaseException:
                self._closed = True  # nothing left for close(), nor for FS.__del__ at exit
                client.close()
                raise

        def _exec_command(self, cmd: str) -> Any:
            raise Unsupported("the log server is only read over SFTP: no command is run on it")

        def close(self) -> None:
            if self._closed:
                return
            try:
                self._client.close()
            finally:
                FS.close(self)

        def __del__(self) -> None:
            # Closed by its owner, always; the garbage collector at interpreter exit must not
            # try again after paramiko's modules are gone (a traceback after the last line).
            pass

    _SFTP_ONLY_SSHFS.append(SftpOnlySSHFS)
    return SftpOnlySSHFS


def open_pinned_sshfs(
    host: str,
    *,
    port: int,
    user: Optional[str],
    password: Optional[str],
    key_file: Optional[str],
    timeout: float,
    host_keys: Sequence[str],
    where: str,
) -> Any:
    """An ``fs.sshfs.SSHFS`` over a pinned SSH connection that only ever opens the SFTP subsystem."""
    sshfs_class = _sftp_only_sshfs_class()
    client = connect_pinned(
        host,
        port=port,
        user=user,
        password=password,
        key_file=key_file,
        timeout=timeout,
        host_keys=host_keys,
        where=where,
    )
    return sshfs_class(client, host, port, user, timeout)


class FsLogFollower:
    """Reads what was appended since the last read; connects lazily and reconnects after a failure."""

    def __init__(self, remote: "FsRemoteLog", path: str) -> None:
        self.remote = remote
        self.path = path
        self.offset = 0
        self._fs: Optional[Any] = None

    def _filesystem(self) -> Any:
        if self._fs is None:
            self._fs = self.remote.open_filesystem()
        return self._fs

    def _size(self) -> int:
        filesystem = self._filesystem()
        if not filesystem.exists(self.path):
            return 0
        return int(filesystem.getsize(self.path))

    def skip_existing(self) -> int:
        with self._errors():
            self.offset = self._size()
        return self.offset

    def start_at(self, offset: int) -> None:
        self.offset = offset

    def read_new(self) -> Iterator[str]:
        """The complete lines after the offset, read in chunks as they are consumed; the offset
        moves past each line given out. A line still being written is left for the next read."""
        with self._errors():
            size = self._size()
            if size < self.offset:
                log.info(
                    "remote log %s shrank (%d < %d): rotated or truncated, reading it from the start",
                    self.path,
                    size,
                    self.offset,
                )
                self.offset = 0
            if size == self.offset:
                return
            stream = self._filesystem().openbin(self.path)
        try:
            pending = b""
            position = self.offset
            with self._errors():
                stream.seek(position)
            while position < size:
                with self._errors():
                    chunk = stream.read(min(CHUNK_BYTES, size - position))
                if not chunk:
                    break
                position += len(chunk)
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    self.offset += len(line) + 1
                    yield line.decode("utf-8", "replace").rstrip("\r")
        finally:
            try:
                stream.close()
            except Exception:  # the connection is gone: the next read reconnects
                self.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except HostKeyMismatch:
            self.close()
            raise
        except Exception as error:  # fs errors, paramiko and socket errors alike
            self.close()
            raise TransferError(
                "reading {} on {}: {}".format(self.path, self.remote.describe(), _reason(error))
            ) from None

    def close(self) -> None:
        if self._fs is not None:
            try:
                self._fs.close()
            except Exception:
                pass
            self._fs = None


def _reason(error: BaseException) -> str:
    cause = getattr(error, "exc", None)  # fs.errors.CreateFailed keeps the real error there
    return " ".join(str(cause or error).split()) or type(cause or error).__name__


class FsRemoteLog:
    def __init__(self, endpoint: RemoteLogEndpoint, timeout: float = 30.0, host_keys: Sequence[str] = ()) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.host_keys = tuple(host_keys)
        if endpoint.ssh is not None and not self.host_keys:
            raise ConfigurationError(
                "{} needs WAREHOUSE_REMOTE_LOG_HOST_KEY: no SSH host key is trusted blindly".format(self.describe())
            )

    def describe(self) -> str:
        return self.endpoint.describe()

    def open_filesystem(self) -> Any:
        _import_fs()
        import fs

        login = self.endpoint.ssh
        if login is None:
            return fs.open_fs(self.endpoint.url)
        filesystem = open_pinned_sshfs(
            login.host,
            port=login.port,
            user=login.user,
            password=login.password,
            key_file=login.key_file,
            timeout=login.timeout if login.timeout is not None else self.timeout,
            host_keys=self.host_keys,
            where="{}:{}".format(login.host, login.port),
        )
        if login.folder:
            from fs.subfs import ClosingSubFS

            try:
                return filesystem.opendir(login.folder, factory=ClosingSubFS)
            except BaseException:
                filesystem.close()  # a folder that is not there leaves no connection behind
                raise
        return filesystem

    def inspect(self, path: str, folder_is_enough: bool = False) -> Optional[Tuple[int, Optional[dt.datetime]]]:
        """Reads the log's last chunk and says its size and when it was last written (its last
        line); None when it is not there and ``folder_is_enough`` (its folder is). Raises
        TransferError with a one-line reason."""
        try:
            filesystem = self.open_filesystem()
        except HostKeyMismatch:
            raise
        except Exception as error:
            raise TransferError("{}: {}".format(self.describe(), _reason(error))) from None
        try:
            from fs.errors import ResourceNotFound

            try:
                info = filesystem.getinfo(path, namespaces=["details"])
            except ResourceNotFound:
                folder = posixpath.dirname(path)
                if folder_is_enough and (not folder or filesystem.isdir(folder)):
                    return None
                raise TransferError("{} on {}: no such file".format(path, self.describe())) from None
            if info.is_dir:
                raise TransferError("{} on {} is a folder, not a file".format(path, self.describe()))
            size = int(info.size)
            with filesystem.openbin(path) as stream:  # read, not only listed: the account may read it
                stream.seek(max(0, size - CHUNK_BYTES))
                stream.read(CHUNK_BYTES)
            return size, info.modified
        except TransferError:
            raise
        except Exception as error:
            raise TransferError("reading {} on {}: {}".format(path, self.describe(), _reason(error))) from None
        finally:
            try:
                filesystem.close()
            except Exception:
                pass

    @contextmanager
    def follow(self, path: str) -> Iterator[FsLogFollower]:
        follower = FsLogFollower(self, path)
        try:
            yield follower
        finally:
            follower.close()
