"""The store on PostgreSQL through psycopg 3: a connection pool, COPY for lines, set-based lookups.

Every identifier that comes from configuration (the schema, the invoice view) is quoted with
``psycopg.sql``; every value is a parameter.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
from array import array
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ContextManager, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from warehouse_core.errors import Conflict
from warehouse_core.model import (
    FileSource,
    FileStatus,
    InboundFileRecord,
    InvoiceLine,
    InvoiceStatus,
    Mail,
    MailEvent,
    Problem,
    SessionPhase,
    SessionState,
    StoredLines,
    WorkSession,
)

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "sql"
MIGRATION_LOCK = "warehouse-migrate"
POLL_LOCK = "warehouse-poll"
SESSION_LOCK = "warehouse-session"


# How an invoice's status is decided, at the import and again at the session's start. Of the numbers
# in the CTE ``invoices`` (one row each), those the view does not list are not_found, those it lists
# that an earlier day exported are already_exported; the others are valid and do not come back.
# An anti-join and two semi-joins: hash joins however many numbers there are.
UNUSUAL_STATUSES = (
    "SELECT c.invoice_number, 'not_found' AS status FROM invoices AS c"
    "  WHERE NOT EXISTS (SELECT 1 FROM {view} AS v WHERE v.invoice_number = c.invoice_number)"
    " UNION ALL"
    " SELECT c.invoice_number, 'already_exported' FROM invoices AS c"
    "  WHERE EXISTS (SELECT 1 FROM exported_invoice AS e WHERE e.invoice_number = c.invoice_number AND e.day < %(day)s)"
    "  AND EXISTS (SELECT 1 FROM {view} AS v WHERE v.invoice_number = c.invoice_number)"
)
VALID = InvoiceStatus.VALID.value
# The lines of a day are those of its one imported file; filtering on file_id uses invoice_line's key.
DAY_FILE = "(SELECT id FROM inbound_file WHERE day = %(day)s AND status = 'imported')"
# COPY text format: these characters are escaped inside a field.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_COPY_ESCAPE = re.compile("[\\\\\t\n\r]")
COPY_BATCH = 2000
EXPORT_BLOCK_LINES = 2000
# Columns of an export line that come from the stored line; any other comes from the invoice view.
LINE_COLUMNS = ("invoice_number", "line_number", "quantity", "description", "value", "day")
SESSION_COLUMNS = "day, state, total, processed, phase, started_at, finished_at, export_file, detail"


def copy_row(line: InvoiceLine, status: str) -> str:
    """The columns after (file_id, day) of one invoice_line row in COPY text format."""
    return "{}\t{}\t{}\t{}\t{}\t{}\n".format(
        line.line_number, copy_text(line.invoice_number), line.quantity, copy_text(line.description), line.value, status
    )


def copy_text(value: str) -> str:
    """A text field in COPY text format (most need no escape, and a search is cheaper than a copy)."""
    return value.translate(_COPY_ESCAPES) if _NEEDS_COPY_ESCAPE.search(value) else value


def _export_field(column: str) -> sql.Composable:
    """A column as export text: NULL as nothing, '|' as '/', line breaks as spaces (see export_line)."""
    if column in LINE_COLUMNS and column not in ("invoice_number", "description"):
        return sql.SQL("l.{}::text").format(sql.Identifier(column))  # numbers and dates: nothing to replace
    table = sql.Identifier("l" if column in LINE_COLUMNS else "v")
    return sql.SQL("translate(coalesce({}.{}::text, ''), E'|\\n\\r', '/  ')").format(table, sql.Identifier(column))


def qualified(name: str) -> sql.Composable:
    """``schema.name`` or ``name`` as a quoted SQL identifier."""
    return sql.Identifier(*name.split("."))


class PsycopgUnitOfWork:
    def __init__(self, connection: psycopg.Connection, invoice_view: str) -> None:
        self.connection = connection
        self.view = qualified(invoice_view)

    def _one(self, query: Any, params: Any = None) -> Optional[Tuple[Any, ...]]:
        return self.connection.execute(query, params).fetchone()

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
                    " reasons, archive_path) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
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
                    ),
                )
        except psycopg.errors.UniqueViolation:
            raise Conflict("{} already has imported data".format(record.day.isoformat()), code="day_has_data") from None
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

    def insert_lines(
        self, file_id: int, day: dt.date, lines: Iterable[InvoiceLine], invoices: Iterable[str]
    ) -> StoredLines:
        """The day's invoices are looked up first, in one query, so the lines go by COPY straight
        into their table while Python parses: no staging table, no second pass on the server."""
        unusual = self._unusual_statuses(day, invoices)
        seen_unusual: Set[str] = set()
        stored = 0
        links: Dict[str, array] = {}  # each category's line numbers, ascending: 4 bytes a link
        prefix = "{}\t{}\t".format(file_id, day.isoformat())
        cursor = self.connection.cursor()
        with cursor.copy(
            "COPY invoice_line (file_id, day, line_number, invoice_number, quantity, description, value, invoice_status)"
            " FROM STDIN"
        ) as copy:
            batch: List[str] = []
            for line in lines:
                status = unusual.get(line.invoice_number)
                if status is None:
                    status = VALID
                else:
                    seen_unusual.add(line.invoice_number)
                batch.append(prefix + copy_row(line, status))
                for name in line.categories:
                    numbers = links.get(name)
                    if numbers is None:
                        numbers = links[name] = array("i")
                    numbers.append(line.line_number)
                if len(batch) == COPY_BATCH:
                    stored += len(batch)
                    copy.write("".join(batch))
                    batch.clear()
            stored += len(batch)
            copy.write("".join(batch))
        self._link_categories(cursor, file_id, links)
        return StoredLines(
            stored=stored,
            not_found=tuple(sorted(i for i in seen_unusual if unusual[i] == InvoiceStatus.NOT_FOUND.value)),
            already_exported=tuple(sorted(i for i in seen_unusual if unusual[i] == InvoiceStatus.ALREADY_EXPORTED.value)),
        )

    def _unusual_statuses(self, day: dt.date, invoices: Iterable[str]) -> Dict[str, str]:
        """The invoices among ``invoices`` that are not valid, with their status (the rest are valid)."""
        rows = self.connection.execute(
            # One text, not an array: psycopg would hold a copy of each of a million numbers to send one.
            sql.SQL(
                "WITH invoices AS (SELECT unnest(string_to_array(%(numbers)s, E'\\n')) AS invoice_number) "
                + UNUSUAL_STATUSES
            ).format(view=self.view),
            {"day": day, "numbers": "\n".join(invoices)},
        ).fetchall()
        return dict(rows)

    @staticmethod
    def _link_categories(cursor: psycopg.Cursor, file_id: int, links: Dict[str, array]) -> None:
        """New categories in one statement, then the links by COPY in the key's order (category, line):
        each lands at the end of its part of the index instead of at a random page."""
        names = list(links)
        cursor.execute("INSERT INTO category (name) SELECT unnest(%s::text[]) ON CONFLICT (name) DO NOTHING", (names,))
        ids = dict(cursor.execute("SELECT name, id FROM category WHERE name = ANY(%s)", (names,)).fetchall())
        with cursor.copy("COPY invoice_line_category (category_id, file_id, line_number) FROM STDIN") as copy:
            for name in sorted(names, key=ids.__getitem__):
                prefix = "{}\t{}\t".format(ids[name], file_id)
                numbers = links.pop(name)
                for start in range(0, len(numbers), COPY_BATCH):
                    copy.write("".join(prefix + str(number) + "\n" for number in numbers[start:start + COPY_BATCH]))

    def refresh_invoice_statuses(self, day: dt.date) -> int:
        self.connection.execute(
            sql.SQL(
                "WITH invoices AS (SELECT DISTINCT invoice_number FROM invoice_line WHERE file_id = " + DAY_FILE + "),"
                " unusual AS (" + UNUSUAL_STATUSES + "),"
                " computed AS (SELECT l.file_id, l.line_number, coalesce(u.status, 'valid') AS status"
                "  FROM invoice_line AS l LEFT JOIN unusual AS u ON u.invoice_number = l.invoice_number"
                "  WHERE l.file_id = " + DAY_FILE + ")"
                " UPDATE invoice_line AS t SET invoice_status = c.status FROM computed AS c"
                " WHERE t.file_id = c.file_id AND t.line_number = c.line_number AND t.invoice_status <> c.status"
            ).format(view=self.view),
            {"day": day},
        )
        row = self._one(
            "SELECT count(*) FROM invoice_line WHERE file_id = " + DAY_FILE + " AND invoice_status = 'valid'", {"day": day}
        )
        return int(row[0]) if row else 0

    def invoices_with_status(self, day: dt.date, status: InvoiceStatus) -> Tuple[str, ...]:
        rows = self.connection.execute(
            "SELECT DISTINCT invoice_number FROM invoice_line WHERE file_id = " + DAY_FILE +
            " AND invoice_status = %(status)s ORDER BY invoice_number",
            {"day": day, "status": status.value},
        ).fetchall()
        return tuple(row[0] for row in rows)

    def record_exported(self, day: dt.date) -> None:
        self.connection.execute(
            "INSERT INTO exported_invoice (invoice_number, day)"
            " SELECT DISTINCT invoice_number, day FROM invoice_line WHERE file_id = " + DAY_FILE +
            " AND invoice_status = 'valid' ON CONFLICT DO NOTHING",
            {"day": day},
        )

    def session(self, day: dt.date) -> Optional[WorkSession]:
        row = self._one("SELECT " + SESSION_COLUMNS + " FROM work_session WHERE day = %s", (day,))
        if row is None:
            return None
        return WorkSession(
            day=row[0],
            state=SessionState(row[1]),
            total=row[2],
            processed=row[3],
            phase=SessionPhase(row[4]) if row[4] else None,
            started_at=row[5],
            finished_at=row[6],
            export_file=row[7],
            detail=row[8],
        )

    def open_session(self, day: dt.date) -> None:
        self.connection.execute(
            "INSERT INTO work_session (day, state) VALUES (%s, 'ready') ON CONFLICT (day) DO NOTHING", (day,)
        )

    def _changed(self, query: str, params: Any) -> bool:
        return self.connection.execute(query, params).rowcount == 1

    def start_session(self, day: dt.date, now: dt.datetime) -> bool:
        return self._changed(
            "UPDATE work_session SET state = 'running', phase = 'exporting', started_at = %s, total = 0,"
            " processed = 0, export_file = NULL, detail = NULL, updated_at = now()"
            " WHERE day = %s AND state = 'ready'",
            (now, day),
        )

    def close_session(self, day: dt.date, now: dt.datetime) -> bool:
        return self._changed(
            "UPDATE work_session SET state = 'closed', finished_at = %s, updated_at = now()"
            " WHERE day = %s AND state IN ('ready', 'running', 'failed')",
            (now, day),
        )

    def update_session(
        self,
        day: dt.date,
        *,
        phase: Optional[SessionPhase] = None,
        total: Optional[int] = None,
        processed: Optional[int] = None,
        export_file: Optional[str] = None,
    ) -> bool:
        fields = {"phase": phase.value if phase else None, "total": total, "processed": processed, "export_file": export_file}
        changes = [sql.SQL("{} = {}").format(sql.Identifier(k), sql.Literal(v)) for k, v in fields.items() if v is not None]
        changes.append(sql.SQL("updated_at = now()"))
        return self._changed(
            sql.SQL("UPDATE work_session SET {} WHERE day = %s AND state = 'running'").format(sql.SQL(", ").join(changes)),
            (day,),
        )

    def finish_session(self, day: dt.date, state: SessionState, now: dt.datetime, detail: Optional[str]) -> bool:
        return self._changed(
            "UPDATE work_session SET state = %s, finished_at = %s, detail = %s, updated_at = now()"
            " WHERE day = %s AND state = 'running'",
            (state.value, now, detail, day),
        )

    def running_days(self) -> List[dt.date]:
        rows = self.connection.execute("SELECT day FROM work_session WHERE state = 'running' ORDER BY day").fetchall()
        return [row[0] for row in rows]

    def enqueue_mail(self, mail: Mail, once_key: Optional[str] = None) -> bool:
        cursor = self.connection.execute(
            "INSERT INTO mail_outbox (event, day, subject, body_text, body_html, once_key)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (once_key) DO NOTHING",
            (mail.event.value, mail.day, mail.subject, mail.text, mail.html, once_key),
        )
        return cursor.rowcount == 1

    def claim_due_mail(self, now: dt.datetime) -> Optional[Mail]:
        row = self._one(
            "SELECT id, event, day, subject, body_text, body_html, attempts FROM mail_outbox"
            " WHERE sent_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= %s)"
            " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
            (now,),
        )
        if row is None:
            return None
        return Mail(
            id=row[0], event=MailEvent(row[1]), day=row[2], subject=row[3], text=row[4], html=row[5], attempts=row[6]
        )

    def mark_mail_sent(self, mail_id: int, now: dt.datetime) -> None:
        self.connection.execute(
            "UPDATE mail_outbox SET sent_at = %s, attempts = attempts + 1, last_error = NULL WHERE id = %s",
            (now, mail_id),
        )

    def mark_mail_failed(self, mail_id: int, error: str, retry_at: dt.datetime) -> None:
        self.connection.execute(
            "UPDATE mail_outbox SET attempts = attempts + 1, last_error = %s, next_attempt_at = %s WHERE id = %s",
            (error, retry_at, mail_id),
        )


class PsycopgStore:
    """Connections come from a pool opened on first use; ``close()`` ends them."""

    def __init__(
        self,
        url: str,
        *,
        schema: str = "warehouse",
        invoice_view: str = "public.invoice_view",
        connect_timeout: float = 10.0,
        pool_size: int = 6,
        timezone: str = "UTC",
    ) -> None:
        self.timezone = timezone
        self.url = url
        self.schema = schema
        self.invoice_view = invoice_view
        self.connect_timeout = connect_timeout
        self.pool_size = pool_size
        self._pool: Optional[ConnectionPool] = None

    def _connection_options(self) -> Dict[str, Any]:
        return {
            "options": "-c search_path={},public -c timezone={}".format(self.schema, self.timezone),
            "connect_timeout": max(1, int(self.connect_timeout)),
            "application_name": "warehouse-invoice-service",
        }

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            self._pool = ConnectionPool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                kwargs=self._connection_options(),
                timeout=self.connect_timeout,
                open=True,
                name="warehouse",
                check=ConnectionPool.check_connection,
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self.pool.connection() as connection:
            yield connection

    @contextmanager
    def unit_of_work(self) -> Iterator[PsycopgUnitOfWork]:
        with self.connection() as connection:
            with connection.transaction():
                yield PsycopgUnitOfWork(connection, self.invoice_view)

    @contextmanager
    def _advisory_lock(self, key: str) -> Iterator[bool]:
        """A session-level lock on its own connection: released at the end, or when the process dies."""
        with self.connection() as connection:
            row = connection.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()
            acquired = bool(row and row[0])
            connection.commit()
            try:
                yield acquired
            finally:
                if acquired:
                    connection.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
                    connection.commit()

    def exclusive_poll(self) -> ContextManager[bool]:
        return self._advisory_lock("{}:{}".format(POLL_LOCK, self.schema))

    def claim_session(self, day: dt.date) -> ContextManager[bool]:
        return self._advisory_lock("{}:{}:{}".format(SESSION_LOCK, self.schema, day.isoformat()))

    @contextmanager
    def export_lines(self, day: dt.date, columns: Sequence[str], skip: int) -> Iterator[Iterator[bytes]]:
        """PostgreSQL joins, formats and packs the lines into blocks; COPY's binary format carries each
        block as it is, so Python only writes bytes (a row per line would cost more than the query)."""
        view = qualified(self.invoice_view)
        with self.connection() as connection:
            with connection.transaction():
                # The file's id as a literal: with a subquery in its place the planner misjudged the
                # day's size and chose nested loops over a million lines.
                row = connection.execute(
                    "SELECT id FROM inbound_file WHERE day = %s AND status = 'imported'", (day,)
                ).fetchone()
                valid = sql.SQL("l.file_id = {} AND l.invoice_status = 'valid'").format(sql.Literal(row[0] if row else -1))
                view_rows = self._view_rows_for(connection, view, valid)
                after = self._line_number_after(connection, valid, skip)
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
                    line=sql.SQL(" || '|' || ").join(_export_field(column) for column in columns),
                    rows=view_rows, valid=valid, after=sql.Literal(after), block=sql.Literal(EXPORT_BLOCK_LINES),
                )
                with connection.cursor().copy(query) as copy:
                    copy.set_types(["bytea"])
                    yield (bytes(row[0]) for row in copy.rows())

    @staticmethod
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

    @staticmethod
    def _line_number_after(connection: psycopg.Connection, valid: sql.Composable, skip: int) -> int:
        """The line number of the ``skip``-th valid line (0 for none): the export resumes after it."""
        if skip <= 0:
            return 0
        row = connection.execute(
            sql.SQL("SELECT l.line_number FROM invoice_line AS l WHERE {} ORDER BY l.line_number OFFSET {} LIMIT 1").format(
                valid, sql.Literal(skip - 1)
            )
        ).fetchone()
        return int(row[0]) if row else 2 ** 31 - 1

    def ping(self) -> bool:
        try:
            with psycopg.connect(self.url, **self._connection_options()) as connection:
                connection.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def migrate(self) -> List[str]:
        """Apply the migrations not yet applied, in order, under a lock; the versions applied."""
        applied: List[str] = []
        with psycopg.connect(self.url, **self._connection_options()) as connection:
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (MIGRATION_LOCK,))
                connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
                connection.execute(
                    sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(self.schema))
                )
                connection.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migration"
                    " (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = {row[0] for row in connection.execute("SELECT version FROM schema_migration")}
                for path in sorted(MIGRATIONS.glob("*.sql")):
                    version = path.stem
                    if version in done:
                        continue
                    statements = path.read_text(encoding="utf-8").encode("utf-8")  # the package's own .sql file
                    connection.execute(statements)
                    connection.execute("INSERT INTO schema_migration (version) VALUES (%s)", (version,))
                    applied.append(version)
        for version in applied:
            log.info("migration %s applied to schema %s", version, self.schema)
        return applied
