"""Errors an operator or ops person can act on; the entry points turn them into 4xx or one line."""

from __future__ import annotations

from typing import Any, Sequence

from warehouse_core.model import Problem


class WarehouseError(Exception):
    """Base of every error the service explains to a person."""


def one_line(error: BaseException) -> str:
    """An error's one-line description for a mail, a status or a log line: the first line of its
    message, after its type when it is not one of ours (a bug, a database or disk error)."""
    lines = str(error).strip().splitlines()
    first = " ".join(lines[0].split()) if lines else ""
    if isinstance(error, WarehouseError) and first:
        return first
    return "{}: {}".format(type(error).__name__, first) if first else type(error).__name__


class ConfigurationError(WarehouseError):
    pass


class Refusal(WarehouseError):
    """A request the service refuses, worded by the entry points from templates/messages.txt.

    ``code`` names the sentence and ``values`` fill it (the one definition, see the Sentences
    port); the message is only the fallback of a log line.
    """

    def __init__(self, message: str = "", code: str = "refused", **values: Any) -> None:
        details = ", ".join("{}={}".format(name, value) for name, value in sorted(values.items()))
        super().__init__(message or "refused: {}{}".format(code, " ({})".format(details) if details else ""))
        self.code = code
        self.values = values


class Conflict(Refusal):
    """The action does not fit the current state (HTTP 409); ``state`` is the session's state when that matters."""

    def __init__(self, message: str = "", code: str = "conflict", state: str = "", **values: Any) -> None:
        super().__init__(message, code, **values)
        self.state = state


class InvalidFile(Refusal):
    """A file was refused (HTTP 400); carries the first problems."""

    def __init__(
        self, message: str = "", problems: Sequence[Problem] = (), code: str = "invalid_file", **values: Any
    ) -> None:
        super().__init__(message, code, **values)
        self.problems = list(problems)


class InvalidArgument(Refusal):
    """A request's argument that cannot be taken as it is (HTTP 400, a usage error on the CLI):
    refused with the range it must be in, never bent into it."""


class DatabaseUnavailable(WarehouseError):
    """The database does not answer, or lost the connection (HTTP 503); worth trying again soon."""


class MigrationBlocked(WarehouseError):
    """A migration gave up waiting for a lock another transaction holds; nothing was changed."""


class TransferError(WarehouseError):
    """A network transfer failed or was cut short; worth trying again later."""


class MailDeliveryError(WarehouseError):
    """SMTP did not take a mail; it stays in the outbox."""


class PayloadTooLarge(Refusal):
    """An upload above the configured limit (HTTP 413)."""

    def __init__(self, *, limit_mb: int) -> None:
        super().__init__(code="too_large", limit_mb=limit_mb)
