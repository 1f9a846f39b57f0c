from __future__ import annotations

from typing import ContextManager, Iterable, Protocol


class LogFollower(Protocol):
    """Follows one log. Its position is opaque (bytes for a file): what ``skip_existing`` gives,
    ``start_at`` takes back, also in another process (it is stored with the session)."""

    def skip_existing(self) -> int:
        """Start after what the log holds now; the position of that point (0 when there is no log)."""

    def start_at(self, position: int) -> None:
        """Start at a position ``skip_existing`` gave earlier."""

    def read_new(self) -> Iterable[str]:
        """The complete lines appended since the last read, given out as they are read (the whole
        new part is never held at once); the position moves past each line given out. From the
        start again if the log was rotated or truncated. Failures raise TransferError, also while
        the lines are being consumed."""


class RemoteLog(Protocol):
    def follow(self, path: str) -> ContextManager[LogFollower]: ...

    def describe(self) -> str: ...
