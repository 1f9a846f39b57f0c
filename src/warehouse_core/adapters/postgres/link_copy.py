"""The category links of one import: each category's line numbers wait on disk while the lines
are parsed and copied, then go by COPY in the key's order.

A transaction runs one statement at a time, so the lines and the links cannot be copied at once.
Copying each chunk's links right after its lines was measured: the links then land in the index in
many runs instead of one ascending run, and the server took 1.7 times as long over them (10.1-12.0 s
against 6.1-6.8 s for 1.9M links, on a loaded machine), more than the overlap won. So the lines
stream while Python parses (the server works on what the socket holds meanwhile), and the links
follow sorted by (category, line). On disk, not in memory, so memory does not grow with the file.
"""

from __future__ import annotations

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
COPY_LINKS = "COPY {} (category_id, file_id, line_number) FROM STDIN WITH (FREEZE)"
ITEM = LINE_NUMBER_TYPE  # the line numbers as 4-byte integers, as CategoryLinks gathers them
LINKS_PER_WRITE = 50_000


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

    def numbers(self, name: str) -> Iterator["array[int]"]:
        """The category's line numbers, ascending, a chunk at a time."""
        for offset, count in self._parts[name]:
            self._file.seek(offset)
            numbers = array(ITEM)
            numbers.fromfile(self._file, count)
            yield numbers


def copy_links(connection: psycopg.Connection, file_id: int, spill: LinkSpill, table: str) -> None:
    """New categories in one statement, then the links by COPY into ``table`` in the key's order
    (category, line), so that the key's build after it finds them sorted."""
    names = spill.names()
    cursor = connection.cursor()
    cursor.execute("INSERT INTO category (name) SELECT unnest(%s::text[]) ON CONFLICT (name) DO NOTHING", (names,))
    ids: Dict[str, int] = dict(
        cursor.execute("SELECT name, id FROM category WHERE name = ANY(%s)", (names,)).fetchall()
    )
    with cursor.copy(sql.SQL(COPY_LINKS).format(sql.Identifier(table))) as copy:
        for name in sorted(names, key=ids.__getitem__):
            prefix = "{}\t{}\t".format(ids[name], file_id)
            for numbers in spill.numbers(name):
                for start in range(0, len(numbers), LINKS_PER_WRITE):
                    part = numbers[start : start + LINKS_PER_WRITE]
                    copy.write(prefix + ("\n" + prefix).join(map(str, part)) + "\n")
