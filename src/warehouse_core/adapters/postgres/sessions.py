"""The sessions role on PostgreSQL: each transition is one conditional UPDATE, so racing callers get one winner."""

from __future__ import annotations

import datetime as dt
from typing import Any, List, Mapping, Optional

from psycopg import sql
from psycopg.types.json import Jsonb

from warehouse_core.adapters.postgres.connected import Connected
from warehouse_core.delivery_states import NEEDING_ATTENTION_STATES
from warehouse_core.model import Delivery, SessionPhase, SessionState, WorkSession

# The columns session_from_row reads, in its order: every query that builds a WorkSession selects these.
SESSION_COLUMNS = (
    "day, state, total, processed, phase, started_at, finished_at, export_file, detail, tries, delivery, log_positions"
)


def session_from_row(row: Any) -> WorkSession:
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
        tries=row[9],
        delivery=Delivery(row[10]) if row[10] else None,
        log_positions=dict(row[11]) if row[11] is not None else None,
    )


class PsycopgSessions(Connected):
    def session(self, day: dt.date) -> Optional[WorkSession]:
        row = self._one("SELECT " + SESSION_COLUMNS + " FROM work_session WHERE day = %s", (day,))
        return None if row is None else session_from_row(row)

    def open_session(self, day: dt.date) -> None:
        self.connection.execute(
            "INSERT INTO work_session (day, state) VALUES (%s, 'ready') ON CONFLICT (day) DO NOTHING", (day,)
        )

    def start_session(self, day: dt.date, now: dt.datetime) -> bool:
        return self._changed(
            "UPDATE work_session SET state = 'running', phase = 'exporting', started_at = %s, total = 0,"
            " processed = 0, export_file = NULL, detail = NULL, tries = 0, updated_at = now()"
            " WHERE day = %s AND state = 'ready'",
            (now, day),
        )

    def close_session(self, day: dt.date, now: dt.datetime) -> bool:
        return self._changed(
            # A running session's detail is its worker's note, which ends with the run; a failed
            # session's is why it failed, and stays.
            "UPDATE work_session SET state = 'closed', finished_at = %s, updated_at = now(),"
            " detail = CASE WHEN state = 'running' THEN NULL ELSE detail END"
            " WHERE day = %s AND state IN ('ready', 'running', 'failed')",
            (now, day),
        )

    def set_closed_phase(self, day: dt.date, phase: SessionPhase) -> bool:
        return self._changed(
            "UPDATE work_session SET phase = %s, updated_at = now() WHERE day = %s AND state = 'closed'",
            (phase.value, day),
        )

    def settling_days(self) -> List[dt.date]:
        rows = self.connection.execute(
            "SELECT day FROM work_session WHERE state = 'closed' AND phase = 'settling' ORDER BY day"
        ).fetchall()
        return [row[0] for row in rows]

    def lock_session(self, day: dt.date) -> None:
        self.connection.execute("SELECT 1 FROM work_session WHERE day = %s FOR UPDATE", (day,))

    def retry_session(self, day: dt.date, kept_export: Optional[str] = None) -> bool:
        return self._changed(
            "UPDATE work_session SET state = 'ready', phase = NULL, total = 0, processed = 0, started_at = NULL,"
            " finished_at = NULL, export_file = %s, detail = NULL, export_deleted_at = NULL, log_positions = NULL,"
            " updated_at = now()"
            " WHERE day = %s AND state = 'failed'",
            (kept_export, day),
        )

    def set_delivery(self, day: dt.date, delivery: Delivery) -> bool:
        return self._changed(
            "UPDATE work_session SET delivery = %s, updated_at = now() WHERE day = %s", (delivery.value, day)
        )

    def days_needing_attention(self, today: dt.date, since: dt.date) -> List[WorkSession]:
        # delivery_states.needs_someone, as one query: the window is a few rows of the primary key.
        rows = self.connection.execute(
            "SELECT " + SESSION_COLUMNS + " FROM work_session AS s"
            " WHERE s.day < %(today)s AND s.state = ANY(%(states)s)"
            " AND ((s.day >= %(since)s AND (s.state IN ('running', 'failed')"
            "   OR (s.state = 'closed' AND s.delivery = 'unknown')))"
            "  OR (s.state = 'ready' AND EXISTS"  # a retried day, whatever its date, until started or closed
            "   (SELECT 1 FROM event AS e WHERE e.day = s.day AND e.kind = 'session-retried')))"
            " ORDER BY s.day",
            {"since": since, "today": today, "states": list(NEEDING_ATTENTION_STATES)},
        ).fetchall()
        return [session_from_row(row) for row in rows]

    def unknown_delivery_days(self) -> List[dt.date]:
        rows = self.connection.execute(
            "SELECT day FROM work_session WHERE delivery = 'unknown' ORDER BY day"
        ).fetchall()
        return [row[0] for row in rows]

    def update_session(
        self,
        day: dt.date,
        *,
        phase: Optional[SessionPhase] = None,
        total: Optional[int] = None,
        processed: Optional[int] = None,
        export_file: Optional[str] = None,
        detail: Optional[str] = None,
        log_positions: Optional[Mapping[str, int]] = None,
        clear_detail: bool = False,
    ) -> bool:
        assert not (clear_detail and detail is not None), "a detail is either given or cleared"
        fields = {
            "phase": phase.value if phase else None,
            "total": total,
            "processed": processed,
            "export_file": export_file,
            "detail": detail,
            "log_positions": Jsonb(dict(log_positions)) if log_positions is not None else None,
        }
        given = {name: value for name, value in fields.items() if value is not None}
        changes: List[sql.Composable] = [
            sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in given
        ]
        if clear_detail:
            changes.append(sql.SQL("detail = NULL"))
        changes.append(sql.SQL("updated_at = now()"))
        return self._changed(
            sql.SQL("UPDATE work_session SET {} WHERE day = {} AND state = 'running'").format(
                sql.SQL(", ").join(changes), sql.Placeholder("day")
            ),
            dict(given, day=day),
        )

    def begin_session_try(self, day: dt.date) -> Optional[int]:
        row = self._one(
            "UPDATE work_session SET tries = tries + 1, updated_at = now() WHERE day = %s AND state = 'running'"
            " RETURNING tries",
            (day,),
        )
        return None if row is None else int(row[0])

    def end_session_try(self, day: dt.date) -> None:
        self.connection.execute(
            "UPDATE work_session SET tries = greatest(tries - 1, 0), updated_at = now()"
            " WHERE day = %s AND state = 'running'",
            (day,),
        )

    def finish_session(self, day: dt.date, state: SessionState, now: dt.datetime, detail: Optional[str]) -> bool:
        return self._changed(
            "UPDATE work_session SET state = %s, finished_at = %s, detail = %s, updated_at = now()"
            " WHERE day = %s AND state = 'running'",
            (state.value, now, detail, day),
        )

    def set_closed_detail(self, day: dt.date, detail: str) -> bool:
        return self._changed(
            "UPDATE work_session SET detail = %s, updated_at = now() WHERE day = %s AND state = 'closed'", (detail, day)
        )

    def running_days(self) -> List[dt.date]:
        rows = self.connection.execute("SELECT day FROM work_session WHERE state = 'running' ORDER BY day").fetchall()
        return [row[0] for row in rows]
