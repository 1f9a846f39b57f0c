from __future__ import annotations

from typing import BinaryIO, Callable, Optional, Protocol


class OutboundFiles(Protocol):
    def upload(self, name: str, open_local: Callable[[], BinaryIO]) -> None:
        """Store the file under a temporary name, check its size, then rename it to ``name``.
        The final name never shows a partial file. Failures raise TransferError."""

    def size(self, name: str) -> Optional[int]:
        """The size of the file under its final ``name``; None when there is none."""

    def describe(self) -> str:
        ...
