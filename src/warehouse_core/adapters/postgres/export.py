"""The export on PostgreSQL: the server joins, formats and packs the lines; Python only writes bytes.

The line rule is ``warehouse_core.export_format``; ``export_field`` builds its SQL from the same
constants (the separator, the NULL text, the replaced characters), and the store contract suite
proves the two agree byte for byte.
"""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import contextmanager
from typing import Iterator, List, Sequence

import psycopg
from psycopg import sql

from warehouse_core.adapters.postgres.identifiers import qualified
from warehouse_core.export_format import FIELD_SEPARATOR, LINE_COLUMNS, NULL_TEXT, REPLACED

log = logging.getLogger(__name__)
EXPORT_BLOCK_LINES = 2000


def export_field(column: str) -> sql.Composable:
    """A column as export text, by export_format's rule."""
    if column in LINE_COLUMNS and column not in ("invoice_number", "description"):
        return sql.SQL("l.{}::text").format(sql.Identifier(column))  # numbers and dates: nothing to replace
    table = sql.Identifier("l" if column in LINE_COLUMNS else "v")
    return sql.SQL("translate(coalesce({}.{}::text, {}), {}, {})").format(
        table,
        sql.Identifier(column),
        sql.Literal(NULL_TEXT),
        sql.Literal("".join(REPLACED)),
        sql.Literal("".join(REPLACED.values())),
    )


def export_line_sql(columns: Sequence[str]) -> sql.Composable:
    """One export line, without its newline."""
    separator = sql.SQL(" || {} || ").format(sql.Literal(FIELD_SEPARATOR))
    parts: List[sql.Composable] = []
    for column in columns:
        parts.extend((separator, export_field(column)) if parts else (export_field(column),))
    return sql.Composed(parts)


@contextmanager
def export_blocks(
    connection: psycopg.Connection, invoice_view: str, day: dt.date, columns: Sequence[str], skip: int
) -> Iterator[Iterator[bytes]]:
    """The day's export lines after the first ``skip``, in blocks of whole lines: PostgreSQL packs
    each block, and COPY's binary format carries it as it is (a row per line would cost more than
    the query)."""
    view = qualified(invoice_view)
    with connection.transaction():
        # The file's id as a literal: with a subquery in its place the planner misjudged the
        # day's size and chose nested loops over a million lines.
        row = connection.execute(
            "SELECT id FROM inbound_file WHERE day = %s AND status = 'imported'", (day,)
        ).fetchone()
        valid = sql.SQL("l.file_id = {} AND l.invoice_status = 'valid'").format(sql.Literal(row[0] if row else -1))
        view_rows = _view_rows_for(connection, view, valid)
        after = _line_number_after(connection, valid, skip)
        # The inner query hands the lines over sorted by block and line, and string_agg keeps
        # the order it is given: one sort, done by parallel workers with the formatting. (An
        # ORDER BY inside string_agg would sort each block a second time, in one process.)
        query = sql.SQL(
            "COPY (SELECT convert_to(string_agg(s.line, ''), 'UTF8') FROM ("
            "SELECT l.line_number / {block} AS block, {line} || E'\\n' AS line"
            " FROM invoice_line AS l LEFT JOIN {rows} AS v ON v.invoice_number = l.invoice_number"
            " WHERE {valid} AND l.line_number > {after} ORDER BY 1, l.line_number"
            ") AS s GROUP BY s.block ORDER BY s.block) TO STDOUT WITH (FORMAT binary)"
        ).format(
            line=export_line_sql(columns),
            rows=view_rows,
            valid=valid,
            after=sql.Literal(after),
            block=sql.Literal(EXPORT_BLOCK_LINES),
        )
        with connection.cursor().copy(query) as copy:
            copy.set_types(["bytea"])
            yield (bytes(row[0]) for row in copy.rows())


def _view_rows_for(connection: psycopg.Connection, view: sql.Composable, valid: sql.Composable) -> sql.Composable:
    """The view itself when it has one row per exported invoice (the usual case, and the fast
    join); else one row per invoice, so that an invoice listed twice is still exported once."""
    # A semi-join, and no LIMIT 1: with one, the planner bets on finding a duplicate at once and
    # picks a nested loop that, when there is none (the usual case), runs for minutes.
    row = connection.execute(
        sql.SQL(
            "SELECT count(*) FROM (SELECT v.invoice_number FROM {view} AS v"
            " WHERE v.invoice_number IN (SELECT l.invoice_number FROM invoice_line AS l WHERE {valid})"
            " GROUP BY v.invoice_number HAVING count(*) > 1) AS duplicated"
        ).format(view=view, valid=valid)
    ).fetchone()
    if not row or row[0] == 0:
        return view
    log.warning("the invoice view lists some invoices more than once: the export takes one row of each")
    return sql.SQL("(SELECT DISTINCT ON (invoice_number) * FROM {} ORDER BY invoice_number)").format(view)


def _line_number_after(connection: psycopg.Connection, valid: sql.Composable, skip: int) -> int:
    """The line number of the ``skip``-th valid line (0 for none): the export resumes after it."""
    if skip <= 0:
        return 0
    row = connection.execute(
        sql.SQL("SELECT l.line_number FROM invoice_line AS l WHERE {} ORDER BY l.line_number OFFSET {} LIMIT 1").format(
            valid, sql.Literal(skip - 1)
        )
    ).fetchone()
    return int(row[0]) if row else 2**31 - 1
