"""The files-and-lines role on PostgreSQL: received files, COPY for lines, set-based invoice lookups."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from contextlib import contextmanager
from itertools import chain
from typing import Dict, Iterable, Iterator, List, Optional, Set, Tuple

import psycopg
from psycopg import sql

from warehouse_core.adapters.postgres.connected import DAY_FILE, Connected
from warehouse_core.adapters.postgres.link_copy import CHUNK_LINES, LinkSpill, copy_links
from warehouse_core.adapters.postgres.partitions import attach_partitions, create_partitions, drop_file_rows
from warehouse_core.errors import Conflict
from warehouse_core.model import (
    FileSource,
    FileStatus,
    InboundFileRecord,
    InvoiceLine,
    InvoiceStatus,
    Problem,
    StoredLines,
)
from warehouse_core.parsing import FIELD_SEPARATOR, CategoryLinks, LineBlock

# How an invoice's status is decided, at the import and again at the session's start. Of the numbers
# in the CTE ``invoices`` (one row each), those the view does not list are not_found, those it lists
# that another day holds (delivery yes or unknown: the ledger, SPEC §5) are already_exported; the
# others are valid and do not come back. Any other day, not only an earlier one: a retried earlier
# day must not ship what a later day shipped meanwhile.
# A query, for a CTE of its own (``unusual AS (…)``): the numbers the view lists (one semi-join,
# the view read once), then those not among them, and those among them that the ledger holds for
# another day (its key probed); planned for the numbers at hand: hash joins for many of them. Reading
# the view once per branch cost a 1M import 1.1-1.4 s more of the server once the ledger held days.
UNUSUAL_STATUSES = sql.SQL(
    "WITH listed AS (SELECT c.invoice_number FROM invoices AS c"
    "  WHERE EXISTS (SELECT 1 FROM {view} AS v WHERE v.invoice_number = c.invoice_number))"
    " SELECT c.invoice_number, 'not_found' AS status FROM invoices AS c"
    "  WHERE NOT EXISTS (SELECT 1 FROM listed AS l WHERE l.invoice_number = c.invoice_number)"
    " UNION ALL"
    " SELECT l.invoice_number, 'already_exported' FROM listed AS l"
    "  WHERE EXISTS (SELECT 1 FROM exported_invoice AS e WHERE e.invoice_number = l.invoice_number AND e.day <> %(day)s)"
)
VALID = InvoiceStatus.VALID.value
# COPY text format: these characters are escaped inside a field.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_COPY_ESCAPE = re.compile("[\\\\\t\n\r]")
# The lines parsed before their new invoices are looked up and their rows written: fewer means more
# queries (each a round trip that Python waits for), more means more parsed lines held at once.
# Measured on the 1M bench file: 50,000 took the peak RSS from 80 MB (a first pass for the
# invoices) to 102 MB, 20,000 to 92 MB, 10,000 to 86 MB, with the same time within the noise.
LOOKUP_LINES = 20_000
# The invoices already looked up are remembered so that a later stretch does not ask for them again,
# up to this many (about 20 MB); past it the valid ones are forgotten and asked for again when they
# come back (the unusual ones stay known). The 1M bench file has 220,000 distinct invoices; a 1M-line
# file of a million peaked at 160 MB, 95 MB with the bound. Asked again, an invoice takes what the
# view and the ledger say then: one that another day shipped meanwhile has its later lines
# already_exported (review 7a); the session's start recomputes every line's status before it exports.
LOOKED_UP_KEPT = 250_000
# Into the file's own partition, created in the same subtransaction (see partitions).
COPY_LINES = (
    "COPY {} (file_id, day, line_number, invoice_number, quantity, description, value, invoice_status)"
    " FROM STDIN WITH (FREEZE)"
)


def copy_row(line: InvoiceLine, status: str) -> str:
    """The columns after (file_id, day) of one invoice_line row in COPY text format."""
    return "{}\t{}\t{}\t{}\t{}\t{}\n".format(
        line.line_number, copy_text(line.invoice_number), line.quantity, copy_text(line.description), line.value, status
    )


def copy_text(value: str) -> str:
    """A text field in COPY text format (most need no escape, and a search is cheaper than a copy)."""
    return value.translate(_COPY_ESCAPES) if _NEEDS_COPY_ESCAPE.search(value) else value


def copy_rows(prefix: str, block: LineBlock, unusual: Dict[str, str]) -> str:
    """invoice_line rows in COPY text format, ``prefix`` holding (file_id, day), each line's status
    from ``unusual`` (valid when absent). A plain line is its four columns already but for the '|'
    between them (no other '|' is in a row: it separates a file's fields), so one replace over
    the text makes them columns; the other lines are written field by field."""
    status = unusual.get
    text = "".join(
        [f"{prefix}{n}\t{line}\t{status(i, VALID)}\n" for n, line, i in zip(block.numbers, block.plain, block.invoices)]
    ).replace(FIELD_SEPARATOR, "\t")
    if block.others:
        text += "".join([prefix + copy_row(line, status(line.invoice_number, VALID)) for line in block.others])
    return text


def _stretches(blocks: Iterable[LineBlock], lines: int) -> Iterator[List[LineBlock]]:
    """The blocks in lists of at least ``lines`` lines (the last may hold fewer), lazily."""
    stretch: List[LineBlock] = []
    count = 0
    for block in blocks:
        stretch.append(block)
        count += len(block)
        if count >= lines:
            yield stretch
            stretch, count = [], 0
    if stretch:
        yield stretch


class PsycopgFilesAndLines(Connected):
    def find_file(self, name: str, sha256: str) -> Optional[InboundFileRecord]:
        row = self._one(
            "SELECT id, name, day, source, sha256, declared_count, actual_lines, status, reasons, archive_path"
            " FROM inbound_file WHERE name = %s AND sha256 = %s ORDER BY id LIMIT 1",
            (name, sha256),
        )
        if row is None:
            return None
        return InboundFileRecord(
            id=row[0],
            name=row[1],
            day=row[2],
            source=FileSource(row[3]),
            sha256=row[4],
            declared_count=row[5],
            actual_lines=row[6],
            status=FileStatus(row[7]),
            reasons=tuple(Problem(**item) for item in row[8]),
            archive_path=row[9],
        )

    def day_has_data(self, day: dt.date) -> bool:
        row = self._one("SELECT EXISTS (SELECT 1 FROM inbound_file WHERE day = %s AND status = 'imported')", (day,))
        return bool(row and row[0])

    def record_file(self, record: InboundFileRecord) -> int:
        try:
            with self.connection.transaction():
                row = self._one(
                    "INSERT INTO inbound_file (name, day, source, sha256, declared_count, actual_lines, status,"
                    " reasons, archive_path, received_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now())) RETURNING id",
                    (
                        record.name,
                        record.day,
                        record.source.value,
                        record.sha256,
                        record.declared_count,
                        record.actual_lines,
                        record.status.value,
                        json.dumps([p.as_dict() for p in record.reasons]),
                        record.archive_path,
                        record.received_at,
                    ),
                )
        except psycopg.errors.UniqueViolation:
            raise Conflict(code="day_has_data", day=record.day.isoformat()) from None
        assert row is not None
        return int(row[0])

    def set_file_outcome(self, file_id: int, status: FileStatus, reasons: Tuple[Problem, ...]) -> None:
        self.connection.execute(
            "UPDATE inbound_file SET status = %s, reasons = %s WHERE id = %s",
            (status.value, json.dumps([p.as_dict() for p in reasons]), file_id),
        )

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        with self.connection.transaction():
            yield

    def insert_lines(self, file_id: int, day: dt.date, blocks: Iterable[LineBlock]) -> StoredLines:
        """The lines go by COPY straight into the file's own table, a stretch of LOOKUP_LINES lines at
        a time: the invoices a parsed stretch brings that were not seen yet are looked up in one
        query, then its rows are written by one COPY, and the next stretch is parsed before that
        COPY ends, while the server takes the rows in. The category links follow (see link_copy),
        then the keys and the attach (see partitions). No pass over the file before: the lookups
        go with the lines."""
        unusual: Dict[str, str] = {}
        looked_up: Set[str] = set()
        unusual_lines: Counter[str] = Counter()

        def count_unusual(block: LineBlock) -> None:
            # All in C: the lines whose invoice is not valid, their invoices, their statuses counted.
            others = [line.invoice_number for line in block.others]
            found = filter(unusual.__contains__, chain(block.invoices, others))
            unusual_lines.update(map(unusual.__getitem__, found))

        stored = spilled = 0
        prefix = "{}\t{}\t".format(file_id, day.isoformat())
        links = CategoryLinks()
        lines_table, links_table = create_partitions(self.connection, day, file_id)
        with LinkSpill() as spill:
            stretches = _stretches(blocks, LOOKUP_LINES)
            stretch = next(stretches, [])
            while stretch:
                carried = set(chain.from_iterable(block.invoices for block in stretch))
                carried.update(line.invoice_number for block in stretch for line in block.others)
                new = "\n".join(carried.difference(looked_up, unusual))  # over the stretch's few, not all seen
                if len(looked_up) + len(carried) > LOOKED_UP_KEPT:
                    looked_up.clear()  # the unusual ones stay known: their lines' statuses and the summary
                # Copies, made together: the numbers cut from the lines would keep each stretch's
                # memory (its lines' pages) alive to the end of the import.
                looked_up.update(new.split("\n"))
                unusual.update(self._unusual_statuses(day, new))
                with self.connection.cursor().copy(sql.SQL(COPY_LINES).format(sql.Identifier(lines_table))) as copy:
                    for block in stretch:
                        copy.write(copy_rows(prefix, block, unusual))
                        count_unusual(block)
                        links.add(block)
                        stored += len(block)
                        if stored - spilled >= CHUNK_LINES:
                            spill.add(links.take())
                            spilled = stored
                    del stretch[:]  # its rows are sent: not held while the next is parsed
                    # The next stretch is parsed while the server takes in this one's rows.
                    stretch = next(stretches, [])
            spill.add(links.take())
            copy_links(self.connection, file_id, spill, links_table)
        attach_partitions(self.connection, day, file_id)
        return StoredLines(
            stored=stored,
            # Only invoices the lines carry were looked up: every unusual one is some line's.
            not_found=tuple(sorted(i for i in unusual if unusual[i] == InvoiceStatus.NOT_FOUND.value)),
            already_exported=tuple(sorted(i for i in unusual if unusual[i] == InvoiceStatus.ALREADY_EXPORTED.value)),
            not_found_lines=unusual_lines[InvoiceStatus.NOT_FOUND.value],
            already_exported_lines=unusual_lines[InvoiceStatus.ALREADY_EXPORTED.value],
        )

    def _unusual_statuses(self, day: dt.date, invoices: str) -> Dict[str, str]:
        """The invoices among ``invoices`` (one per line) that are not valid, with their status (the
        rest are valid)."""
        if not invoices:
            return {}
        rows = self.connection.execute(
            # One text, not an array: psycopg would hold a copy of each of a million numbers to send one.
            sql.SQL(
                "WITH invoices AS (SELECT unnest(string_to_array(%(numbers)s, E'\\n')) AS invoice_number),"
                " unusual AS ({unusual}) SELECT invoice_number, status FROM unusual"
            ).format(unusual=UNUSUAL_STATUSES.format(view=self.view)),
            {"day": day, "numbers": invoices},
            # Planned for its numbers each time: prepared (psycopg does after five runs), PostgreSQL
            # would soon plan it once for any numbers, a loop probing the view for each.
            prepare=False,
        ).fetchall()
        return dict(rows)

    def refresh_invoice_statuses(self, day: dt.date) -> int:
        # The file id as a value, not a subquery: the UPDATE is then planned on the file's one
        # partition (with a subquery, PostgreSQL before 14 would plan it on every partition).
        found = self._one(DAY_FILE, {"day": day})
        if found is None:
            return 0
        params = {"day": day, "file": found[0]}
        self.connection.execute(
            sql.SQL(
                "WITH invoices AS (SELECT DISTINCT invoice_number FROM invoice_line WHERE file_id = %(file)s),"
                " unusual AS ({unusual}),"
                " computed AS (SELECT l.line_number, coalesce(u.status, 'valid') AS status"
                "  FROM invoice_line AS l LEFT JOIN unusual AS u ON u.invoice_number = l.invoice_number"
                "  WHERE l.file_id = %(file)s)"
                " UPDATE invoice_line AS t SET invoice_status = c.status FROM computed AS c"
                " WHERE t.file_id = %(file)s AND t.line_number = c.line_number AND t.invoice_status <> c.status"
            ).format(unusual=UNUSUAL_STATUSES.format(view=self.view)),
            params,
        )
        row = self._one(
            "SELECT count(*) FROM invoice_line WHERE file_id = %(file)s AND invoice_status = 'valid'", params
        )
        return int(row[0]) if row else 0

    def drop_file_lines(self, file_id: int, day: dt.date) -> bool:
        return drop_file_rows(self.connection, day, file_id)

    def invoices_with_status(self, day: dt.date, status: InvoiceStatus) -> Tuple[str, ...]:
        rows = self.connection.execute(
            sql.SQL(
                "SELECT DISTINCT invoice_number FROM invoice_line WHERE file_id = {}"
                " AND invoice_status = %(status)s ORDER BY invoice_number"
            ).format(DAY_FILE),
            {"day": day, "status": status.value},
        ).fetchall()
        return tuple(row[0] for row in rows)

    def record_exported(self, day: dt.date) -> None:
        self.connection.execute("UPDATE exported_invoice SET delivered = true WHERE day = %s AND NOT delivered", (day,))
        self._hold(day, delivered=True)

    def _hold(self, day: dt.date, delivered: bool) -> None:
        """The day's valid invoices into the ledger; a row already there keeps what it says."""
        self.connection.execute(
            sql.SQL(
                "INSERT INTO exported_invoice (invoice_number, day, delivered)"
                " SELECT DISTINCT invoice_number, day, %(delivered)s FROM invoice_line WHERE file_id = {}"
                " AND invoice_status = 'valid' ON CONFLICT DO NOTHING"
            ).format(DAY_FILE),
            {"day": day, "delivered": delivered},
        )

    def hold_exported(self, day: dt.date) -> Tuple[str, ...]:
        # One holder at a time (the lock lasts until the transaction ends): two days checking and
        # holding at once could otherwise both hold one invoice. Other readers are not blocked.
        self.connection.execute("LOCK TABLE exported_invoice IN SHARE ROW EXCLUSIVE MODE")
        rows = self.connection.execute(
            sql.SQL(
                "SELECT DISTINCT l.invoice_number FROM invoice_line AS l"
                " WHERE l.file_id = {} AND l.invoice_status = 'valid' AND EXISTS (SELECT 1 FROM exported_invoice AS e"
                "  WHERE e.invoice_number = l.invoice_number AND e.day <> %(day)s)"
                " ORDER BY 1"
            ).format(DAY_FILE),
            {"day": day},
        ).fetchall()
        if rows:
            return tuple(row[0] for row in rows)
        self._hold(day, delivered=False)  # pending until the rename is proven
        return ()

    def release_exported(self, day: dt.date) -> bool:
        self.connection.execute("DELETE FROM exported_invoice WHERE day = %s AND NOT delivered", (day,))
        row = self.connection.execute(
            "SELECT EXISTS (SELECT 1 FROM exported_invoice WHERE day = %s)", (day,)
        ).fetchone()
        return bool(row and row[0])
