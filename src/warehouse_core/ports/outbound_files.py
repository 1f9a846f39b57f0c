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
        """Whether the temporary file of an upload of ``name`` is on the server. Once it was stored
        and checked, only the rename (or a discard) removes it: after the rename was asked for, its
        absence says the rename went through, even if the consumer has since taken the final file."""

    def discard(self, name: str) -> bool:
        """Remove the temporary file an unfinished upload of ``name`` left; whether there was one.
        Once the rename was asked for, this is also the fence against it: removed means no rename
        can follow, none there means the rename went through."""

    def describe(self) -> str: ...
