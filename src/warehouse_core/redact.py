"""Secrets out of every line the service writes (SPEC §8: "Secrets never appear in logs or errors").

Two guards. The password of the database URL is taken out of the URL and handed to libpq as a
keyword of its own (``url_password``): libpq quotes the part of a URL it cannot parse ("invalid
percent-encoded token: …", "unexpected spaces found in …"), and a password holding a ``%`` or a
space is exactly such a part. And the entry points pass each line they write, their log lines and
tracebacks included, through a ``Redactor`` that knows every configured secret in each form it can
take (as written, percent-decoded, percent-encoded), for the errors nobody foresaw.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, List, Optional, Tuple
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from warehouse_core.settings import Settings

MASK = "***"
# A shorter secret would blank ordinary words out of every line; no real password is that short.
SHORTEST = 3


def url_password(url: str) -> Tuple[str, Optional[str]]:
    """``url`` without its password, and the password (percent-decoded where it is encoded).

    The password runs from the first ``:`` of the user part to the last ``@`` of the URL, so it
    may hold ``@``, ``:``, a space or a ``%`` written as they are; a ``%`` followed by two hex
    digits is read as an encoding (``%25`` is ``%``), as URLs say. None when there is none.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return url, None
    userinfo, _, host = rest.rpartition("@")
    user, colon, written = userinfo.partition(":")
    if not colon:
        return url, None
    stripped = "{}://{}@{}".format(scheme, user, host)
    return stripped, (unquote(written) if written else None)


def secret_forms(secret: str) -> List[str]:
    """The ways ``secret`` may show in a line: as given, decoded, encoded."""
    forms = {secret, unquote(secret), quote(secret, safe=""), quote(unquote(secret), safe="")}
    return [form for form in forms if len(form) >= SHORTEST]


class Redactor:
    """Replaces every known secret in a line with ``***``; thread-safe, secrets only added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: List[str] = []

    def add(self, secret: Optional[str]) -> None:
        if not secret:
            return
        with self._lock:
            known = set(self._secrets) | set(secret_forms(secret))
            self._secrets = sorted(known, key=len, reverse=True)  # the longest first: no half-cleared secret

    def add_url(self, url: str) -> None:
        """The password of ``url``, as written in it and as decoded."""
        _, password = url_password(url)
        if password is None:
            return
        self.add(password)
        userinfo = url.partition("://")[2].rpartition("@")[0]
        self.add(userinfo.partition(":")[2])

    def add_settings(self, settings: "Settings") -> None:
        self.add_url(settings.database_url.get_secret_value())
        self.add_url(settings.remote_log_fs.url)
        for endpoint in (settings.inbound_ftp_url, settings.outbound_ftp_url, settings.smtp_url):
            self.add(endpoint.password)
        if settings.secret_key is not None:
            self.add(settings.secret_key.get_secret_value())

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def install(self, handler: logging.Handler) -> None:
        """Clear what ``handler`` writes: messages, their arguments and tracebacks (once per handler)."""
        if not isinstance(handler.formatter, _RedactingFormatter):
            handler.setFormatter(_RedactingFormatter(handler.formatter, self))


class _RedactingFormatter(logging.Formatter):
    def __init__(self, inner: Optional[logging.Formatter], redactor: Redactor) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(self.inner.format(record))


# The one redactor of a process: the entry points add the settings' secrets once they are read.
REDACTOR = Redactor()
