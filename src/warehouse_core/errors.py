"""Errors an operator or ops person can act on; the entry points turn them into 4xx or one line."""
from __future__ import annotations

from typing import Sequence

from warehouse_core.model import Problem


class WarehouseError(Exception):
    """Base of every error the service explains to a person."""


class ConfigurationError(WarehouseError):
    pass


class Conflict(WarehouseError):
    """The action does not fit the current state (HTTP 409).

    ``code`` names the refusal so that an entry point can word it from its own templates;
    ``state`` is the session's state when that matters.
    """

    def __init__(self, message: str, code: str = "conflict", state: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.state = state


class InvalidFile(WarehouseError):
    """A file was rejected whole (HTTP 400); carries the first problems."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class TransferError(WarehouseError):
    """A network transfer failed or was cut short; worth trying again later."""


class MailDeliveryError(WarehouseError):
    """SMTP did not take a mail; it stays in the outbox."""


class PayloadTooLarge(WarehouseError):
    """An upload above the configured limit (HTTP 413)."""
