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
        """A file to write into; ``download``: the poll's, which clear_partial_downloads may remove
        once no poll is running (an upload's is never removed there: its request may be writing it)."""

    def clear_partial_downloads(self) -> List[str]:
        """Remove the partial downloads a killed poll left behind; their names. Only the holder of
        the poll lock may ask: then no download is being written."""

    def open(self, path: str) -> BinaryIO: ...

    def delete(self, path: str) -> bool:
        """Remove an archived file (the retention); whether it was there."""
