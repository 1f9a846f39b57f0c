from __future__ import annotations

from typing import BinaryIO, Callable, Optional, Protocol


class OutboundFiles(Protocol):
    def upload(
        self, name: str, open_local: Callable[[], BinaryIO], before_rename: Optional[Callable[[], None]] = None
    ) -> None:
        """Store the file under a temporary name, check its size, call ``before_rename`` (when it
        raises, its error goes on and the temporary file stays: the caller knows whether it may
        remove it), then rename it to ``name``. The final name never shows a partial file.
        Failures raise TransferError."""

    def size(self, name: str) -> Optional[int]:
        """The size of the file under its final ``name``; None when there is none."""

    def temporary_present(self, name: str) -> bool:
        """Whether the temporary file of an upload of ``name``, or the one a Close set aside (see
        ``fence``), is on the server. Once it was stored and checked, only the rename moves it
        away: after the rename was asked for, the absence of both says the rename went through,
        even if the consumer has since taken the final file."""

    def fence(self, name: str) -> bool:
        """Set the temporary file of ``name`` aside (rename it to a name the consumer ignores) so
        that no rename into place can follow: True when it was there or already set aside (nothing
        was delivered), False when neither is there (the rename went through). Raises
        TransferError when the server cannot say (unreachable, or refusing while the file is there)."""

    def discard(self, name: str) -> bool:
        """Remove the temporary file an unfinished upload of ``name`` left, and one set aside;
        whether there was one."""

    def describe(self) -> str: ...
