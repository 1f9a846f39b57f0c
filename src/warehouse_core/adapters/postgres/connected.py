"""What each role of the unit of work shares: the transaction's connection and two short helpers."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import psycopg
from psycopg import sql

from warehouse_core.adapters.postgres.identifiers import qualified

Query = Any  # a literal SQL string or a psycopg.sql.Composable

# The lines of a day are those of its one imported file; filtering on file_id uses invoice_line's key.
DAY_FILE = sql.SQL("(SELECT id FROM inbound_file WHERE day = %(day)s AND status = 'imported')")


class Connected:
    def __init__(self, connection: psycopg.Connection, invoice_view: str) -> None:
        self.connection = connection
        self.view = qualified(invoice_view)

    def _one(self, query: Query, params: Any = None) -> Optional[Tuple[Any, ...]]:
        return self.connection.execute(query, params).fetchone()

    def _changed(self, query: Query, params: Any) -> bool:
        """Whether the statement changed exactly one row (a conditional transition that applied)."""
        return self.connection.execute(query, params).rowcount == 1
