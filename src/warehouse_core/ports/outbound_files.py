from __future__ import annotations

from typing import BinaryIO, Callable, Protocol


class OutboundFiles(Protocol):
    def upload(self, name: str, open_local: Callable[[], BinaryIO]) -> None:
        """Store the file under a temporary name, check its size, then rename it to ``name``.
        The final name never shows a partial file. Failures raise TransferError."""

    def describe(self) -> str:
        ...
