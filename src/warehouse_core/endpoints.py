"""The servers the service talks to, each parsed once from its URL into a typed endpoint.

Settings turn ``WAREHOUSE_*_URL`` and ``WAREHOUSE_REMOTE_LOG_FS`` into these when they are read;
the adapters take them as they are and never see a URL. A password is never part of a repr, and
``describe()`` is the form that log lines and errors show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

TRUE_WORDS = ("1", "true", "yes")


def check_ports(url: str) -> None:
    """A port, where the URL has one, between 1 and 65535 (libpq URLs may list several hosts)."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    for host in netloc.split(","):
        try:
            port = urlsplit("//" + host).port
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError("has a port that is not a number between 1 and 65535")


def redact_url(url: str) -> str:
    """The URL with its password masked and its query dropped, for log lines and errors."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = "{}:{}".format(netloc, parts.port)
    if parts.username:
        netloc = "{}:***@{}".format(parts.username, netloc)
    return "{}://{}{}".format(parts.scheme, netloc, parts.path)


@dataclass(frozen=True)
class FtpEndpoint:
    """``ftp://user:pass@host:port/dir``, or ``ftps://`` for explicit TLS."""

    host: str
    port: int = 21
    user: str = "anonymous"
    password: str = field(default="", repr=False)
    directory: str = "/"
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> "FtpEndpoint":
        parts = urlsplit(url)
        if parts.scheme not in ("ftp", "ftps") or not parts.hostname:
            raise ValueError("must be ftp://user:pass@host:port/dir or ftps://…")
        check_ports(url)
        return cls(
            host=parts.hostname,
            port=parts.port or 21,
            user=unquote(parts.username or "anonymous"),
            password=unquote(parts.password or ""),
            directory=unquote(parts.path or "/") or "/",
            tls=parts.scheme == "ftps",
        )

    def describe(self) -> str:
        return "{}://{}@{}:{}{}".format("ftps" if self.tls else "ftp", self.user, self.host, self.port, self.directory)


@dataclass(frozen=True)
class SmtpEndpoint:
    """``smtp://host:port``, ``smtps://user:pass@host:port`` or ``smtp://…?starttls=true``."""

    host: str
    port: int
    user: Optional[str] = None
    password: str = field(default="", repr=False)
    implicit_tls: bool = False
    starttls: bool = False

    @classmethod
    def parse(cls, url: str) -> "SmtpEndpoint":
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("must be smtp://user:pass@host:port or smtps://…")
        check_ports(url)
        implicit_tls = parts.scheme == "smtps"
        starttls = parse_qs(parts.query).get("starttls", ["false"])[0].lower() in TRUE_WORDS
        if not implicit_tls and parts.password and not starttls:
            raise ValueError(
                "has a password but neither smtps:// nor ?starttls=true: the password would cross the network in clear"
            )
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit_tls else 25),
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password or ""),
            implicit_tls=implicit_tls,
            starttls=starttls,
        )

    def describe(self) -> str:
        return "{}://{}{}:{}".format(
            "smtps" if self.implicit_tls else "smtp", self.user + "@" if self.user else "", self.host, self.port
        )


@dataclass(frozen=True)
class SshLogin:
    """The ``ssh://user:pass@host:port/folder?pkey=…&timeout=…`` of a remote log, as pyfilesystem2
    reads such a URL (credentials up to the first ``@``, query values unquoted)."""

    host: str
    port: int = 22
    user: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    key_file: Optional[str] = None
    timeout: Optional[float] = None
    folder: str = ""

    @classmethod
    def parse(cls, rest: str) -> "SshLogin":
        credentials, at, address = rest.partition("@")
        if not at:
            credentials, address = "", rest
        user, _, password = credentials.partition(":")
        address, _, query = address.partition("!")[0].partition("?")
        params = {key: unquote(values[0]) for key, values in parse_qs(query, keep_blank_values=True).items()}
        host, port, folder = _ssh_address(unquote(address))
        try:
            timeout = float(params["timeout"]) if "timeout" in params else None
        except ValueError:
            raise ValueError("has a timeout that is not a number of seconds") from None
        return cls(
            host=host,
            port=port,
            user=unquote(user) or None,
            password=unquote(password) or None,
            key_file=params.get("pkey"),
            timeout=timeout,
            folder=folder,
        )


def _ssh_address(resource: str) -> Tuple[str, int, str]:
    """Host, port and folder of an ssh:// URL's ``host:port/folder`` (``[::1]:22`` for IPv6)."""
    address, _, folder = resource.partition("/")
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or (host.startswith("[") and not host.endswith("]")):
        host, port = address, ""
    return host.strip("[]"), int(port) if port else 22, folder


@dataclass(frozen=True)
class RemoteLogEndpoint:
    """Where the consumer's importer writes its log: a pyfilesystem2 URL. ``ssh://`` is opened by
    the service itself from ``ssh`` (so that the host key is pinned); any other scheme is handed to
    pyfilesystem2 as it is."""

    url: str = field(repr=False)
    ssh: Optional[SshLogin] = None

    @classmethod
    def parse(cls, url: str) -> "RemoteLogEndpoint":
        if "://" not in url:
            raise ValueError("must be a pyfilesystem2 URL such as ssh://user@host:22/ or osfs:///path")
        check_ports(url)
        scheme, _, rest = url.partition("://")
        ssh = SshLogin.parse(rest) if scheme == "ssh" else None
        if ssh is not None and ssh.timeout is not None and ssh.timeout <= 0:
            raise ValueError("has a timeout that is not a number of seconds above 0")
        return cls(url=url, ssh=ssh)

    def describe(self) -> str:
        return redact_url(self.url)

    def keyscan_hint(self) -> str:
        """How to read an ssh:// server's fingerprints: ``ssh-keyscan [-p PORT] HOST``."""
        host, port = (self.ssh.host, self.ssh.port) if self.ssh else ("HOST", 22)
        return "ssh-keyscan {}{}".format("-p {} ".format(port) if port != 22 else "", host or "HOST")
