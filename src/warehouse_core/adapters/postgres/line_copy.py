"""One import's lines and category links by COPY, chunk after chunk, on a thread of their own.

A transaction runs one statement at a time, so the lines and the links cannot be copied at once;
but while the server stores one chunk's lines and then its links, the caller's thread parses the
next chunk. The copying thread mostly waits on the socket (the GIL is free then), and memory holds
a few chunks whatever the file's size.
"""
from __future__ import annotations

import queue
import threading
from array import array
from typing import Dict, List, Mapping, NamedTuple, Optional, Type

import psycopg

# Lines of a chunk: enough that a statement's overhead is nothing, few enough that the server
# starts soon and memory stays small (a chunk is about 1.5 MB of COPY text).
CHUNK_LINES = 25_000
# Chunks parsed ahead of the server at most.
QUEUE_CHUNKS = 2
COPY_LINES = (
    "COPY invoice_line (file_id, day, line_number, invoice_number, quantity, description, value, invoice_status)"
    " FROM STDIN"
)
COPY_LINKS = "COPY invoice_line_category (category_id, file_id, line_number) FROM STDIN"


class Chunk(NamedTuple):
    """Consecutive lines: their invoice_line rows as COPY text, and each category's line numbers."""

    rows: List[str]
    links: Mapping[str, array]


class LineCopier:
    """``put`` chunks in line order inside ``with``; leaving the block waits until the server has
    them all, and raises what the copying failed with. An error in the block stops the copying."""

    def __init__(self, connection: psycopg.Connection, file_id: int) -> None:
        self.connection = connection
        self.file_id = file_id
        self._chunks: "queue.Queue[Optional[Chunk]]" = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._failure: Optional[BaseException] = None
        self._stop = threading.Event()
        self._category_ids: Dict[str, int] = {}
        self._thread = threading.Thread(target=self._copy_all, name="line-copy", daemon=True)

    def __enter__(self) -> "LineCopier":
        self._thread.start()
        return self

    def put(self, chunk: Chunk) -> None:
        while True:
            self._raise_failure()
            try:
                self._chunks.put(chunk, timeout=0.05)
                return
            except queue.Full:
                continue

    def __exit__(self, kind: Optional[Type[BaseException]], error: Optional[BaseException], trace: object) -> None:
        if kind is not None:
            self._stop.set()  # the rest is not copied; the transaction is being undone anyway
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
            cursor = self.connection.cursor()
            while True:
                chunk = self._chunks.get()
                if chunk is None or self._stop.is_set():
                    return
                with cursor.copy(COPY_LINES) as copy:
                    for text in chunk.rows:
                        copy.write(text)
                self._copy_links(cursor, chunk.links)
        except BaseException as failure:  # handed to the caller's thread, which raises it
            self._failure = failure

    def _copy_links(self, cursor: psycopg.Cursor, links: Mapping[str, array]) -> None:
        """The chunk's links in the key's order (category, line): each category's new entries go
        to the end of its part of the index, which PostgreSQL splits as an ascending insert."""
        ids = self._ids_of(cursor, list(links))
        with cursor.copy(COPY_LINKS) as copy:
            for name in sorted(links, key=ids.__getitem__):
                prefix = "{}\t{}\t".format(ids[name], self.file_id)
                copy.write(prefix + ("\n" + prefix).join(map(str, links[name])) + "\n")

    def _ids_of(self, cursor: psycopg.Cursor, names: List[str]) -> Dict[str, int]:
        """Each category's id; new names are inserted in one statement."""
        new = [name for name in names if name not in self._category_ids]
        if new:
            cursor.execute("INSERT INTO category (name) SELECT unnest(%s::text[]) ON CONFLICT (name) DO NOTHING", (new,))
            self._category_ids.update(cursor.execute("SELECT name, id FROM category WHERE name = ANY(%s)", (new,)).fetchall())
        return self._category_ids
