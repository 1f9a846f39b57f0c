"""The remote importer's log through pyfilesystem2: ``ssh://`` (fs.sshfs) or ``osfs://``.

For ``ssh://`` the SSH connection is built here, not by fs.sshfs's URL opener: that one accepts
any host key (paramiko's AutoAddPolicy), trusts ``~/.ssh/known_hosts`` and ``~/.ssh/config`` of
whoever runs the service, and connects to ``gethostbyname(host)``. Here the server's key must be
one of the configured SHA256 fingerprints, checked before any password or key is offered.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from warehouse_core.endpoints import RemoteLogEndpoint
from warehouse_core.errors import ConfigurationError, TransferError

log = logging.getLogger(__name__)
KEEPALIVE_SECONDS = 10
# Host keys asked for before giving up: a server holds one per type (ed25519, ecdsa, rsa, dsa).
MAX_HOST_KEYS = 6


def _import_fs() -> None:
    with warnings.catch_warnings():
        # fs 2.4.16 imports pkg_resources, which warns on every start with recent setuptools.
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import fs  # noqa: F401
        import fs.opener  # noqa: F401
        import fs.sshfs  # noqa: F401


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
    """An ``fs.sshfs.SSHFS`` over a paramiko client that checks the host key against ``host_keys``
    and reads neither ``~/.ssh/known_hosts`` nor ``~/.ssh/config``."""
    _import_fs()
    import paramiko
    from fs.base import FS
    from fs.sshfs.sshfs import SSHFS

    class PinnedSSHFS(SSHFS):
        def __init__(self) -> None:
            # SSHFS.__init__ is skipped on purpose (see the module's docstring); these are the
            # attributes it sets and the rest of SSHFS reads.
            FS.__init__(self)
            self._user, self._host, self._port = user, host, port
            self._timeout = self._exec_timeout = timeout
            # A server holds several host keys (ed25519, ecdsa, rsa) and shows the one paramiko
            # prefers; when that one is not pinned, ask again with its type left out, so that a
            # pinned rsa key is found. Nothing is sent before a key matches.
            offered: List[Tuple[str, str]] = []
            disabled: List[str] = []
            while True:
                self._client = client = paramiko.SSHClient()
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
                    break
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
            try:
                client.get_transport().set_keepalive(KEEPALIVE_SECONDS)
                self._sftp = client.open_sftp()
                self._sftp.get_channel().settimeout(timeout)
            except BaseException:
                client.close()
                raise

    return PinnedSSHFS()


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

    def skip_existing(self) -> None:
        with self._errors():
            self.offset = self._size()

    def read_new(self) -> List[str]:
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
                return []
            with self._filesystem().openbin(self.path) as stream:
                stream.seek(self.offset)
                data = stream.read(size - self.offset)
        complete = data.rfind(b"\n") + 1  # a line still being written is read next time
        self.offset += complete
        lines: List[str] = data[:complete].decode("utf-8", "replace").splitlines()
        return lines

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

            return filesystem.opendir(login.folder, factory=ClosingSubFS)
        return filesystem

    @contextmanager
    def follow(self, path: str) -> Iterator[FsLogFollower]:
        follower = FsLogFollower(self, path)
        try:
            yield follower
        finally:
            follower.close()
