"""Received files on the local disk: ``<data>/archive/YYYY-MM-DD/<name>``, written durably."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, List, Optional

from warehouse_core.model import safe_file_name

# incoming/ holds the files being received: the poll's downloads and the uploads, told apart by
# their prefix; earlier versions named both tmp*.part.
DOWNLOAD_PREFIX = "download-"
UPLOAD_PREFIX = "upload-"
EARLIER_PREFIX = "tmp"
RECEIVING_LOCK = ".receiving"


def archive_name(name: str) -> str:
    """The safe name a received or exported file is stored under."""
    return safe_file_name(name) or "unnamed"


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(str(folder), os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class LocalPendingFile:
    def __init__(self, archive: "LocalArchive", handle: BinaryIO, path: Path) -> None:
        self._archive = archive
        self._handle = handle
        self.path = path
        self.kept: Optional[str] = None

    def write(self, data: bytes) -> None:
        self._handle.write(data)

    def keep(self, day: dt.date, name: str) -> str:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        folder = self._archive.root / day.isoformat()
        self._archive.make_folder(folder)
        target = self._archive.free_name(folder, archive_name(name), self.path)
        os.replace(str(self.path), str(target))
        self._archive.sync_folder(folder)
        self.kept = str(target.relative_to(self._archive.root))
        return self.kept


class LocalArchive:
    """``sync_folder`` writes a folder's entries down to the disk (fsync of the folder); the
    tests give a recorder."""

    def __init__(self, data_dir: Path, sync_folder: Callable[[Path], None] = _fsync_folder) -> None:
        self.root = Path(data_dir).resolve() / "archive"
        self.incoming = Path(data_dir).resolve() / "incoming"
        self.sync_folder = sync_folder

    def make_folder(self, folder: Path) -> None:
        """``folder`` and any missing parent, each written down in its own parent: the poll deletes
        the file from the server once it is kept, and a new day folder the disk has not recorded
        could vanish with the file in it on a crash."""
        missing = []
        while not folder.is_dir():
            missing.append(folder)
            folder = folder.parent
        for created in reversed(missing):
            created.mkdir(exist_ok=True)
            self.sync_folder(created.parent)

    @contextmanager
    def receive(self, *, download: bool = False) -> Iterator[LocalPendingFile]:
        self.incoming.mkdir(parents=True, exist_ok=True)
        with self._receiving(shared=True, wait=True):  # an upload is only cleared while none runs
            prefix = DOWNLOAD_PREFIX if download else UPLOAD_PREFIX
            descriptor, name = tempfile.mkstemp(dir=str(self.incoming), prefix=prefix, suffix=".part")
            handle = os.fdopen(descriptor, "wb")
            pending = LocalPendingFile(self, handle, Path(name))
            try:
                yield pending
            finally:
                handle.close()
                if pending.kept is None:
                    Path(name).unlink()

    @contextmanager
    def _receiving(self, shared: bool, wait: bool) -> Iterator[bool]:
        """incoming/'s lock (flock on incoming/.receiving): every receive holds it shared, and
        clearing takes it exclusive without waiting, so only when nothing is being received in
        any process of this host. Whether it was taken."""
        descriptor = os.open(str(self.incoming / RECEIVING_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
            try:
                fcntl.flock(descriptor, mode)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(descriptor)  # and with it the lock

    def clear_partial_files(self) -> List[str]:
        """The poll's partial files in incoming/ (the caller holds the poll lock), the tmp*.part of
        earlier versions (which named downloads and uploads alike), and, when no upload is being
        received, the uploads' partial files: what killed processes left half written."""
        if not self.incoming.is_dir():
            return []
        stale = (DOWNLOAD_PREFIX, EARLIER_PREFIX)
        with self._receiving(shared=False, wait=False) as nothing_received:
            removed = []
            for path in sorted(self.incoming.iterdir()):
                ours = path.name.startswith(stale) or (nothing_received and path.name.startswith(UPLOAD_PREFIX))
                if path.suffix == ".part" and ours and _unlink(path):
                    removed.append(path.name)
        return removed

    def _inside(self, path: str) -> Path:
        target = (self.root / path).resolve()
        if self.root not in target.parents:
            raise ValueError("not an archive path: {}".format(path))
        return target

    def open(self, path: str) -> BinaryIO:
        return open(self._inside(path), "rb")

    def delete(self, path: str) -> bool:
        return _unlink(self._inside(path))

    @staticmethod
    def free_name(folder: Path, name: str, source: Path) -> Path:
        """``name`` itself when free or holding the same bytes, else ``name.1``, ``name.2``, …"""
        candidate = folder / name
        suffix = 0
        while candidate.exists() and not _same_content(candidate, source):
            suffix += 1
            candidate = folder / "{}.{}".format(name, suffix)
        return candidate


def _same_content(first: Path, second: Path) -> bool:
    if first.stat().st_size != second.stat().st_size:
        return False
    with open(first, "rb") as a, open(second, "rb") as b:
        while True:
            chunk_a, chunk_b = a.read(1 << 20), b.read(1 << 20)
            if chunk_a != chunk_b:
                return False
            if not chunk_a:
                return True


class LocalExportWriter:
    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle

    def write(self, lines: bytes) -> None:
        self.handle.write(lines)

    def sync(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())


class LocalExportFiles:
    """Export files at ``<data>/exports/YYYY-MM-DD/<name>``."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir).resolve() / "exports"

    def path(self, day: dt.date, name: str) -> Path:
        return self.root / day.isoformat() / archive_name(name)

    def complete_lines(self, day: dt.date, name: str) -> int:
        path = self.path(day, name)
        if not path.exists():
            return 0
        count = 0
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                count += chunk.count(b"\n")
        return count

    @contextmanager
    def writer(self, day: dt.date, name: str, keep_lines: int) -> Iterator[LocalExportWriter]:
        path = self.path(day, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab+") as handle:
            handle.truncate(_offset_after_lines(handle, keep_lines))
            handle.seek(0, os.SEEK_END)
            yield LocalExportWriter(handle)

    def open(self, day: dt.date, name: str) -> BinaryIO:
        return open(self.path(day, name), "rb")

    def discard(self, day: dt.date, name: str) -> bool:
        return _unlink(self.path(day, name))

    def keep_aside(self, day: dt.date, name: str, kept: str) -> bool:
        source = self.path(day, name)
        try:
            os.replace(source, self.path(day, kept))
        except FileNotFoundError:
            return False
        _fsync_folder(source.parent)
        return True

    def discard_kept(self, day: dt.date, name: str) -> int:
        kept = re.compile(re.escape(archive_name(name)) + r"\.run\d+")
        folder = self.root / day.isoformat()
        if not folder.is_dir():
            return 0
        return sum(1 for path in folder.iterdir() if kept.fullmatch(path.name) and _unlink(path))


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    _fsync_folder(path.parent)
    return True


def _offset_after_lines(handle: BinaryIO, lines: int) -> int:
    """The byte offset just after the first ``lines`` lines (anything after is a partial write)."""
    handle.seek(0)
    offset = 0
    for _ in range(lines):
        line = handle.readline()
        if not line.endswith(b"\n"):
            break
        offset += len(line)
    return offset
