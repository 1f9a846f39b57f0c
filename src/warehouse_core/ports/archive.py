from __future__ import annotations

import datetime as dt
from typing import BinaryIO, ContextManager, List, Protocol


class PendingFile(Protocol):
    """A file being received; thrown away unless kept. It is written once and never read back: the
    receiver hashes and counts the bytes as they arrive."""

    def write(self, data: bytes) -> None: ...

    def keep(self, day: dt.date, name: str) -> str:
        """Make it durable (fsync) and move it into the archive; its archive path."""


class Archive(Protocol):
    """The local, durable store of every received file."""

    def receive(self, *, download: bool = False) -> ContextManager[PendingFile]:
        """A file to write into; ``download``: the poll's (an upload's otherwise)."""

    def clear_partial_files(self) -> List[str]:
        """Remove what a killed poll or upload left half written; their names. Only the holder of
        the poll lock may ask (then no download is being written); an upload's file goes only when
        no upload is being received, which the archive itself knows."""

    def open(self, path: str) -> BinaryIO: ...

    def delete(self, path: str) -> bool:
        """Remove an archived file (the retention); whether it was there."""
