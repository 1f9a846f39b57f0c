from __future__ import annotations

from typing import Callable, ContextManager, List, Optional, Protocol

from warehouse_core.model import RemoteFile


class InboundConnection(Protocol):
    """One logged-in connection to the customer's inbound server. Failures raise TransferError."""

    def list_files(self) -> List[RemoteFile]:
        """The plain files of the folder, with their sizes when the server tells them."""

    def size(self, name: str) -> Optional[int]:
        """The file's size now, or None when it is gone or the server has no SIZE command."""

    def download(self, name: str, write: Callable[[bytes], None]) -> int:
        """Stream the file into ``write``; the number of bytes received."""

    def delete(self, name: str) -> None:
        """Remove the file from the server. It comes long after the download: when the server has
        ended the idle connection meanwhile, the adapter logs on again for it (and a file found
        gone then counts as removed: the first DELE may have been carried out)."""


class InboundFiles(Protocol):
    def connect(self) -> ContextManager[InboundConnection]:
        """A connection that is closed when the block ends."""

    def describe(self) -> str:
        """Where the files come from, without secrets, for log lines."""
