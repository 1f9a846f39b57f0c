"""One import's lines and category links by COPY: the lines on a thread of their own while the
caller parses, then the links in the key's order from a spill file.

A transaction runs one statement at a time, so the lines and the links cannot be copied at once.
Copying each chunk's links right after its lines was measured: the links then land in the index
in many runs instead of one ascending run, and the server took 1.7 times as long over them (10-12 s
against 6.1-6.8 s for 1.9M links, on a loaded machine), more than the overlap won. So the lines go
while Python parses, and the links follow sorted by (category, line); meanwhile each category's
line numbers wait on disk, not in memory, so memory does not grow with the file.
"""
from __future__ import annotations

import queue
import tempfile
import threading
from array import array
from collections import defaultdict
from typing import DefaultDict, Dict, Iterator, List, Mapping, Optional, Tuple, Type

import psycopg

# Lines handed to the COPY thread at a time: enough that handing over costs nothing, few enough
# that memory stays small (about 1.5 MB of COPY text).
CHUNK_LINES = 25_000
# Chunks parsed ahead of the server at most.
QUEUE_CHUNKS = 2
COPY_LINES = (
    "COPY invoice_line (file_id, day, line_number, invoice_number, quantity, description, value, invoice_status)"
    " FROM STDIN"
)
COPY_LINKS = "COPY invoice_line_category (category_id, file_id, line_number) FROM STDIN"
ITEM = "i"  # the line numbers as 4-byte integers
LINKS_PER_WRITE = 50_000


class _Stopped(Exception):
    """Raised inside the COPY to abort it when the caller failed."""


class LineCopier:
    """One COPY of the lines on a thread of its own: ``put`` chunks of rows (COPY text) in line
    order inside ``with``; leaving the block waits until the server has them all and raises what
    the copying failed with. An error in the block aborts the COPY."""

    def __init__(self, connection: psycopg.Connection) -> None:
        self.connection = connection
        self._chunks: "queue.Queue[Optional[List[str]]]" = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._failure: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._copy_all, name="line-copy", daemon=True)

    def __enter__(self) -> "LineCopier":
        self._thread.start()
        return self

    def put(self, rows: List[str]) -> None:
        while True:
            self._raise_failure()
            try:
                self._chunks.put(rows, timeout=0.05)
                return
            except queue.Full:
                continue

    def __exit__(self, kind: Optional[Type[BaseException]], error: Optional[BaseException], trace: object) -> None:
        if kind is not None:
            self._stop.set()  # the transaction is being undone anyway
        while self._thread.is_alive():
            try:
                self._chunks.put(None, timeout=0.05)
                break
            except queue.Full:
                continue
        self._thread.join()
        if kind is None:
            self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _copy_all(self) -> None:
        try:
            with self.connection.cursor().copy(COPY_LINES) as copy:
                while True:
                    rows = self._chunks.get()
                    if self._stop.is_set():
                        raise _Stopped()
                    if rows is None:
                        return
                    for text in rows:
                        copy.write(text)
        except _Stopped:
            pass
        except BaseException as failure:  # handed to the caller's thread, which raises it
            self._failure = failure


class LinkSpill:
    """Each category's line numbers, a chunk at a time, in a temporary file."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()
        self._parts: DefaultDict[str, List[Tuple[int, int]]] = defaultdict(list)  # (offset, count) in line order

    def __enter__(self) -> "LinkSpill":
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def add(self, links: Mapping[str, array]) -> None:
        for name, numbers in links.items():
            self._parts[name].append((self._file.tell(), len(numbers)))
            numbers.tofile(self._file)

    def names(self) -> List[str]:
        return list(self._parts)

    def numbers(self, name: str) -> Iterator[array]:
        """The category's line numbers, ascending, a chunk at a time."""
        for offset, count in self._parts[name]:
            self._file.seek(offset)
            numbers = array(ITEM)
            numbers.fromfile(self._file, count)
            yield numbers


def copy_links(connection: psycopg.Connection, file_id: int, spill: LinkSpill) -> None:
    """New categories in one statement, then the links by COPY in the key's order (category, line):
    one ascending run, each at the end of the index while the table is young."""
    names = spill.names()
    cursor = connection.cursor()
    cursor.execute("INSERT INTO category (name) SELECT unnest(%s::text[]) ON CONFLICT (name) DO NOTHING", (names,))
    ids: Dict[str, int] = dict(cursor.execute("SELECT name, id FROM category WHERE name = ANY(%s)", (names,)).fetchall())
    with cursor.copy(COPY_LINKS) as copy:
        for name in sorted(names, key=ids.__getitem__):
            prefix = "{}\t{}\t".format(ids[name], file_id)
            for numbers in spill.numbers(name):
                for start in range(0, len(numbers), LINKS_PER_WRITE):
                    part = numbers[start:start + LINKS_PER_WRITE]
                    copy.write(prefix + ("\n" + prefix).join(map(str, part)) + "\n")
