"""The remote importer's log through pyfilesystem2: ``ssh://`` (fs.sshfs) or ``osfs://``."""
from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional

from warehouse_core.errors import TransferError
from warehouse_core.settings import redact_url

log = logging.getLogger(__name__)


class FsLogFollower:
    """Reads what was appended since the last read; connects lazily and reconnects after a failure."""

    def __init__(self, remote: "FsRemoteLog", path: str) -> None:
        self.remote = remote
        self.path = path
        self.offset = 0
        self._fs: Optional[Any] = None

    def _filesystem(self) -> Any:
        if self._fs is None:
            self._fs = self.remote.open_filesystem()
        return self._fs

    def _size(self) -> int:
        filesystem = self._filesystem()
        if not filesystem.exists(self.path):
            return 0
        return int(filesystem.getsize(self.path))

    def skip_existing(self) -> None:
        with self._errors():
            self.offset = self._size()

    def read_new(self) -> List[str]:
        with self._errors():
            size = self._size()
            if size < self.offset:
                log.info("remote log %s shrank (%d < %d): rotated or truncated, reading it from the start", self.path, size, self.offset)
                self.offset = 0
            if size == self.offset:
                return []
            with self._filesystem().openbin(self.path) as stream:
                stream.seek(self.offset)
                data = stream.read(size - self.offset)
        complete = data.rfind(b"\n") + 1  # a line still being written is read next time
        self.offset += complete
        return data[:complete].decode("utf-8", "replace").splitlines()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except Exception as error:  # fs errors, paramiko and socket errors alike
            self.close()
            raise TransferError("reading {} on {}: {}".format(self.path, self.remote.describe(), error or type(error).__name__)) from None

    def close(self) -> None:
        if self._fs is not None:
            try:
                self._fs.close()
            except Exception:
                pass
            self._fs = None


class FsRemoteLog:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.timeout = timeout

    def describe(self) -> str:
        return redact_url(self.url)

    def open_filesystem(self) -> Any:
        with warnings.catch_warnings():
            # fs 2.4.16 imports pkg_resources, which warns on every start with recent setuptools.
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            import fs
            import fs.opener

        url = self.url
        if url.startswith("ssh://") and "timeout=" not in url:
            url += ("&" if "?" in url else "?") + "timeout={}".format(int(self.timeout))
        return fs.open_fs(url)

    @contextmanager
    def follow(self, path: str) -> Iterator[FsLogFollower]:
        follower = FsLogFollower(self, path)
        try:
            yield follower
        finally:
            follower.close()
