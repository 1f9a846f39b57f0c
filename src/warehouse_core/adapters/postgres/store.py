"""The store on PostgreSQL through psycopg 3: a connection pool that ties the roles together.

Every identifier that comes from configuration (the schema, the invoice view) is quoted with
``psycopg.sql``; every value is a parameter.
"""
from __future__ import annotations

import datetime as dt
import threading
from contextlib import contextmanager
from typing import Any, ContextManager, Dict, FrozenSet, Iterator, List, Optional, Sequence

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from warehouse_core.adapters.postgres import export, locks, migrations
from warehouse_core.adapters.postgres.identifiers import qualified
from warehouse_core.adapters.postgres.unit_of_work import PsycopgUnitOfWork
from warehouse_core.errors import ConfigurationError
from warehouse_core.export_format import view_columns_needed


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
        self._pool_lock = threading.Lock()

    def _connection_options(self) -> Dict[str, Any]:
        # The export turns dates, times and intervals into text on the server: these settings fix
        # that text whatever the customer's server or database defaults are (SPEC §8).
        pinned = {
            "search_path": "{},public".format(self.schema),
            "timezone": self.timezone,
            "datestyle": "ISO",
            "intervalstyle": "postgres",
            "extra_float_digits": "1",
        }
        return {
            "options": " ".join("-c {}={}".format(name, value) for name, value in pinned.items()),
            "connect_timeout": max(1, int(self.connect_timeout)),
            "application_name": "warehouse-invoice-service",
        }

    @property
    def pool(self) -> ConnectionPool:
        # Threads of a server asking at once would each open a pool and leak all but one.
        with self._pool_lock:
            if self._pool is None:
                self._pool = self._open_pool()
            return self._pool

    def _open_pool(self) -> ConnectionPool:
        return ConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            kwargs=self._connection_options(),
            timeout=self.connect_timeout,
            open=True,
            name="warehouse",
            check=ConnectionPool.check_connection,
        )

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self.pool.connection() as connection:
            yield connection

    @contextmanager
    def unit_of_work(self) -> Iterator[PsycopgUnitOfWork]:
        with self.connection() as connection:
            with connection.transaction():
                yield PsycopgUnitOfWork(connection, self.invoice_view)

    def exclusive_poll(self) -> ContextManager[bool]:
        return locks.advisory_lock(self.connection(), locks.poll_lock_key(self.schema))

    def claim_session(self, day: dt.date) -> ContextManager[bool]:
        return locks.advisory_lock(self.connection(), locks.session_lock_key(self.schema, day))

    @contextmanager
    def export_lines(self, day: dt.date, columns: Sequence[str], skip: int) -> Iterator[Iterator[bytes]]:
        with self.connection() as connection:
            with export.export_blocks(connection, self.invoice_view, day, columns, skip) as blocks:
                yield blocks

    def ping(self) -> bool:
        """Through the pool (a health check every few seconds must not open a connection each
        time); the pool's check replaces a connection that a database restart cut."""
        try:
            with self.pool.connection(timeout=self.connect_timeout) as connection:
                connection.execute("SELECT 1")
            return True
        except (psycopg.Error, PoolTimeout):
            return False

    def missing_view_columns(self, export_columns: Sequence[str]) -> List[str]:
        """The columns the invoice view needs (the key, the date, the export's own) that it lacks."""
        # A connection of its own, not the pool's: a wrong password or a missing view is said at
        # once, in PostgreSQL's words, rather than after the pool's timeout.
        with psycopg.connect(self.url, **self._connection_options()) as connection:
            try:
                cursor = connection.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(qualified(self.invoice_view)))
            except psycopg.errors.UndefinedTable:
                raise ConfigurationError(
                    "invalid configuration: WAREHOUSE_INVOICE_VIEW names {}, which does not exist".format(self.invoice_view)
                ) from None
            present = {column.name for column in cursor.description or ()}
        return sorted(set(view_columns_needed(export_columns)) - present)

    def migrate(self) -> List[str]:
        """Apply the migrations not yet applied, in order, under a lock; the versions applied."""
        with psycopg.connect(self.url, **self._connection_options()) as connection:
            return migrations.migrate(connection, self.schema)
