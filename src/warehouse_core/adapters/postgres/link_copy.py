"""The category links of one import: each category's line numbers wait on disk while the lines
are parsed and copied, then go by one binary COPY, one row per category with its numbers in an
array (``category_lines``, migration 011).

A transaction runs one statement at a time, so the lines and the links cannot be copied at once;
the lines stream while Python parses (the server works on what the socket holds meanwhile) and
the links follow. On disk, not in memory, so memory does not grow with the file: one spilled
chunk of a category's numbers is in memory at a time, as the row that carries them is written.

One row per link (migration 001 to 010) cost 1.9M rows and their key for a 1M-line file: 0.5 s
to copy and 0.5 s to index on a quiet machine, 145 bytes a line on disk. As arrays in the binary
format (no number is printed or parsed), about 50 rows and 4 bytes a link.
"""

from __future__ import annotations

import struct
import sys
import tempfile
from array import array
from collections import defaultdict
from typing import DefaultDict, Dict, Iterator, List, Mapping, Tuple

import psycopg
from psycopg import sql

from warehouse_core.parsing import LINE_NUMBER_TYPE

# Lines whose links are kept in memory before they go to the spill file.
CHUNK_LINES = 25_000
# Into the file's own table, created in the same subtransaction: FREEZE writes the rows final.
COPY_LINKS = "COPY {} (category_id, file_id, line_numbers) FROM STDIN WITH (FORMAT binary, FREEZE)"
ITEM = LINE_NUMBER_TYPE  # the line numbers as 4-byte integers, as CategoryLinks gathers them
# PostgreSQL's binary COPY: the signature, no flags, no header extension; -1 fields ends the data.
BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
BINARY_TRAILER = struct.pack("!h", -1)
INT4_OID = 23
if array(ITEM).itemsize != 4:  # every CPython platform; the binary rows below say int4
    raise ImportError("array({!r}) items are not 4 bytes here".format(ITEM))


class LinkSpill:
    """Each category's line numbers, a chunk at a time, in a temporary file."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()
        self._parts: DefaultDict[str, List[Tuple[int, int]]] = defaultdict(list)  # (offset, count) in line order

    def __enter__(self) -> "LinkSpill":
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def add(self, links: Mapping[str, "array[int]"]) -> None:
        self._file.seek(0, 2)  # after the last part, wherever a read left the file
        for name, numbers in links.items():
            self._parts[name].append((self._file.tell(), len(numbers)))
            numbers.tofile(self._file)

    def names(self) -> List[str]:
        return list(self._parts)

    def count(self, name: str) -> int:
        """How many line numbers the category holds."""
        return sum(count for _, count in self._parts[name])

    def numbers(self, name: str) -> Iterator["array[int]"]:
        """The category's line numbers, ascending, a chunk at a time."""
        for offset, count in self._parts[name]:
            self._file.seek(offset)
            numbers = array(ITEM)
            numbers.fromfile(self._file, count)
            yield numbers


def copy_links(connection: psycopg.Connection, file_id: int, spill: LinkSpill, table: str) -> None:
    """New categories in one statement, then one row per category into ``table`` by binary COPY,
    in the key's order (category, file), each row written a spilled chunk at a time."""
    names = spill.names()
    cursor = connection.cursor()
    cursor.execute("INSERT INTO category (name) SELECT unnest(%s::text[]) ON CONFLICT (name) DO NOTHING", (names,))
    ids: Dict[str, int] = dict(
        cursor.execute("SELECT name, id FROM category WHERE name = ANY(%s)", (names,)).fetchall()
    )
    with cursor.copy(sql.SQL(COPY_LINKS).format(sql.Identifier(table))) as copy:
        copy.write(BINARY_HEADER)
        for name in sorted(names, key=ids.__getitem__):
            count = spill.count(name)
            if count:
                copy.write(binary_row_start(ids[name], file_id, count))
                for numbers in spill.numbers(name):
                    copy.write(binary_elements(numbers))
        copy.write(BINARY_TRAILER)


def binary_row_start(category_id: int, file_id: int, count: int) -> bytes:
    """The start of one row (category_id int4, file_id int8, line_numbers int4[] of ``count``
    elements) in the binary COPY format, up to the array's elements: the field count, each field's
    length and value, the array's dimensions (one, no nulls, of int4, ``count`` long from 1)."""
    length = 5 * 4 + count * (4 + 4)
    return struct.pack("!hiiiqi", 3, 4, category_id, 8, file_id, length) + struct.pack(
        "!iiiii", 1, 0, INT4_OID, count, 1
    )


def binary_elements(numbers: "array[int]") -> bytes:
    """Array elements in the binary COPY format: each its length (4), then its value, in network order."""
    elements = array(ITEM, [4]) * (2 * len(numbers))
    elements[1::2] = numbers
    if sys.byteorder == "little":
        elements.byteswap()
    return elements.tobytes()
