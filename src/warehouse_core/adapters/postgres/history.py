"""The events and history roles on PostgreSQL: the event table, and the history's reads.

Every read here touches one row per file, session, mail, event or check of the days asked for,
through an index on the day; none reads invoice_line (its counts are stored at import time).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Optional, Sequence, Tuple

from psycopg.types.json import Jsonb

from warehouse_core.adapters.postgres.connected import Connected
from warehouse_core.adapters.postgres.sessions import SESSION_COLUMNS, session_from_row
from warehouse_core.audit import Event, EventKind
from warehouse_core.days import DayFile, DaySummary, FileCounts
from warehouse_core.metrics import DEPENDENCIES, MetricsSnapshot
from warehouse_core.model import FileSource, FileStatus, InvoiceStatus, Problem, SessionState

POLL = "poll"
_FILE_COLUMNS = (
    "id, day, name, source, status, received_at, actual_lines, stored_lines, ignored_lines, not_found_lines,"
    " valid_lines, coalesce(problem_count, jsonb_array_length(reasons)), archive_path"
)


class PsycopgEvents(Connected):
    def record_event(self, event: Event) -> None:
        self.connection.execute(
            "INSERT INTO event (day, at, kind, actor, detail) VALUES (%s, %s, %s, %s, %s)",
            (event.day, event.at, event.kind.value, event.actor, Jsonb(event.detail)),
        )

    def events_of_day(self, day: dt.date) -> List[Event]:
        rows = self.connection.execute(
            "SELECT id, day, at, kind, actor, detail FROM event WHERE day = %s ORDER BY id", (day,)
        ).fetchall()
        return [Event(id=r[0], day=r[1], at=r[2], kind=EventKind(r[3]), actor=r[4], detail=r[5]) for r in rows]


class PsycopgHistory(Connected):
    def record_file_counts(self, file_id: int, counts: FileCounts) -> None:
        self.connection.execute(
            "UPDATE inbound_file SET stored_lines = %s, ignored_lines = %s, not_found_lines = %s, valid_lines = %s"
            " WHERE id = %s",
            (counts.stored, counts.ignored, counts.not_found, counts.valid, file_id),
        )

    def record_problem_count(self, file_id: int, count: int) -> None:
        self.connection.execute("UPDATE inbound_file SET problem_count = %s WHERE id = %s", (count, file_id))

    def history_days(self, before: Optional[dt.date], limit: int) -> List[dt.date]:
        # Each branch reads an index on the day; the union is a few rows per day at most.
        rows = self.connection.execute(
            "SELECT day FROM ("
            " SELECT day FROM inbound_file WHERE day < %(before)s"
            " UNION SELECT day FROM work_session WHERE day < %(before)s"
            " UNION SELECT day FROM mail_outbox WHERE day < %(before)s"
            " UNION SELECT day FROM event WHERE day < %(before)s"
            ") AS days ORDER BY day DESC LIMIT %(limit)s",
            {"before": before or dt.date.max, "limit": limit},
        ).fetchall()
        return [row[0] for row in rows]

    def day_summaries(self, days: Sequence[dt.date]) -> List[DaySummary]:
        wanted = list(days)
        if not wanted:
            return []
        files: Dict[dt.date, List[DayFile]] = {day: [] for day in wanted}
        for row in self.connection.execute(
            "SELECT " + _FILE_COLUMNS + " FROM inbound_file WHERE day = ANY(%s) ORDER BY day, id", (wanted,)
        ):
            files[row[1]].append(_day_file(row))
        sessions = {
            row[0]: session_from_row(row)
            for row in self.connection.execute(
                "SELECT " + SESSION_COLUMNS + " FROM work_session WHERE day = ANY(%s)", (wanted,)
            )
        }
        mails = {
            row[0]: row[1:]
            for row in self.connection.execute(
                "SELECT day, count(*), count(sent_at), bool_or(event = 'no-file') FROM mail_outbox"
                " WHERE day = ANY(%s) GROUP BY day",
                (wanted,),
            )
        }
        summaries = []
        for day in wanted:
            queued, sent, no_file = mails.get(day, (0, 0, False))
            summaries.append(
                DaySummary(
                    day=day,
                    files=tuple(files[day]),
                    session=sessions.get(day),
                    mails_queued=int(queued),
                    mails_sent=int(sent),
                    no_file_alert=bool(no_file),
                )
            )
        return summaries

    def day_files(self, day: dt.date) -> List[DayFile]:
        rows = self.connection.execute(
            "SELECT " + _FILE_COLUMNS + ", reasons FROM inbound_file WHERE day = %s ORDER BY id", (day,)
        ).fetchall()
        return [_day_file(row, reasons=tuple(Problem(**item) for item in row[13])) for row in rows]

    def metrics_snapshot(self, today: dt.date) -> MetricsSnapshot:
        imports = self._one(
            "SELECT max(received_at), coalesce(sum(valid_lines), 0), coalesce(sum(not_found_lines), 0),"
            " coalesce(sum(stored_lines - valid_lines - not_found_lines), 0)"
            " FROM inbound_file WHERE status = 'imported'"
        )
        assert imports is not None
        state = self._one("SELECT state FROM work_session WHERE day = %s", (today,))
        duration = self._one(
            "SELECT extract(epoch FROM finished_at - started_at) FROM work_session"
            " WHERE state IN ('completed', 'failed') AND started_at IS NOT NULL AND finished_at IS NOT NULL"
            " ORDER BY finished_at DESC LIMIT 1"
        )
        outbox = self._one("SELECT count(*), min(created_at) FROM mail_outbox WHERE sent_at IS NULL")
        assert outbox is not None
        checks = {
            row[0]: row[1:]
            for row in self.connection.execute("SELECT name, ok, last_success_at, failures FROM service_check")
        }
        poll = checks.pop(POLL, (None, None, 0))
        return MetricsSnapshot(
            last_import_at=imports[0],
            poll_last_success_at=poll[1],
            poll_failures=int(poll[2]),
            lines_imported={
                InvoiceStatus.VALID.value: int(imports[1]),
                InvoiceStatus.NOT_FOUND.value: int(imports[2]),
                InvoiceStatus.ALREADY_EXPORTED.value: int(imports[3]),
            },
            today_state=SessionState(state[0]) if state else SessionState.NONE,
            last_session_duration=float(duration[0]) if duration and duration[0] is not None else None,
            outbox_pending=int(outbox[0]),
            outbox_oldest_pending_at=outbox[1],
            dependencies={name: bool(values[0]) for name, values in checks.items() if name in DEPENDENCIES},
        )

    def record_poll(self, now: dt.datetime, ok: bool) -> None:
        self.record_check(POLL, now, ok, "")

    def record_check(self, dependency: str, now: dt.datetime, ok: bool, detail: str) -> None:
        self.connection.execute(
            "INSERT INTO service_check AS c (name, ok, checked_at, detail, last_success_at, failures)"
            " VALUES (%(name)s, %(ok)s, %(now)s, %(detail)s, CASE WHEN %(ok)s THEN %(now)s END,"
            "  CASE WHEN %(ok)s THEN 0 ELSE 1 END)"
            " ON CONFLICT (name) DO UPDATE SET ok = excluded.ok, checked_at = excluded.checked_at,"
            "  detail = excluded.detail, last_success_at = coalesce(excluded.last_success_at, c.last_success_at),"
            "  failures = c.failures + excluded.failures",
            {"name": dependency, "ok": ok, "now": now, "detail": detail},
        )

    def last_check(self, dependency: str) -> Optional[dt.datetime]:
        row = self._one("SELECT checked_at FROM service_check WHERE name = %s", (dependency,))
        return row[0] if row else None

    def last_success(self, dependency: str) -> Optional[dt.datetime]:
        row = self._one("SELECT last_success_at FROM service_check WHERE name = %s", (dependency,))
        return row[0] if row else None

    def archived_files_before(self, day: dt.date) -> List[Tuple[int, dt.date, str]]:
        rows = self.connection.execute(
            "SELECT f.id, f.day, f.archive_path FROM inbound_file AS f"
            " LEFT JOIN work_session AS s ON s.day = f.day"
            " WHERE f.day < %s AND f.archive_deleted_at IS NULL AND f.archive_path <> ''"
            " AND (s.day IS NULL OR s.state IN ('completed', 'failed', 'closed')) ORDER BY f.day, f.id",
            (day,),
        ).fetchall()
        return [(row[0], row[1], row[2]) for row in rows]

    def exports_before(self, day: dt.date) -> List[Tuple[dt.date, str]]:
        rows = self.connection.execute(
            "SELECT day, export_file FROM work_session WHERE day < %s AND export_file IS NOT NULL"
            " AND export_deleted_at IS NULL AND state IN ('completed', 'failed', 'closed') ORDER BY day",
            (day,),
        ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def mark_archive_deleted(self, file_id: int, now: dt.datetime) -> bool:
        return self._changed(
            "UPDATE inbound_file SET archive_deleted_at = %s WHERE id = %s AND archive_deleted_at IS NULL",
            (now, file_id),
        )

    def mark_export_deleted(self, day: dt.date, now: dt.datetime) -> bool:
        return self._changed(
            "UPDATE work_session SET export_deleted_at = %s WHERE day = %s AND export_deleted_at IS NULL", (now, day)
        )


def _day_file(row: Any, reasons: Tuple[Problem, ...] = ()) -> DayFile:
    counts = None
    if row[7] is not None:
        counts = FileCounts(stored=row[7], ignored=row[8], not_found=row[9], valid=row[10])
    return DayFile(
        id=row[0],
        name=row[2],
        source=FileSource(row[3]),
        status=FileStatus(row[4]),
        received_at=row[5],
        lines=row[6],
        counts=counts,
        problem_count=int(row[11] or 0),
        reasons=reasons,
        archive_path=row[12],
    )
