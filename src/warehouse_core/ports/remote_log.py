from __future__ import annotations

from typing import ContextManager, List, Protocol


class LogFollower(Protocol):
    def skip_existing(self) -> None:
        """Start after what the log holds now."""

    def read_new(self) -> List[str]:
        """The complete lines appended since the last read; from the start again if the log was
        rotated or truncated. Failures raise TransferError."""


class RemoteLog(Protocol):
    def follow(self, path: str) -> ContextManager[LogFollower]: ...

    def describe(self) -> str: ...
