"""The store on PostgreSQL through psycopg 3: a connection pool that ties the roles together.

Every identifier that comes from configuration (the schema, the invoice view) is quoted with
``psycopg.sql``; every value is a parameter.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager, nullcontext
from typing import Any, ContextManager, Dict, Iterator, List, Optional, Sequence

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from warehouse_core.adapters.postgres import export, locks, migrations
from warehouse_core.adapters.postgres.connections import Connections
from warehouse_core.adapters.postgres.identifiers import qualified
from warehouse_core.adapters.postgres.unit_of_work import PsycopgUnitOfWork
from warehouse_core.errors import ConfigurationError, DatabaseUnavailable
from warehouse_core.export_format import view_columns_needed
from warehouse_core.redact import url_password

# How soon the server ends the backend of a client that vanished without a word, releasing the
# advisory locks it held (SPEC §5: a session never stuck; issue 18: "within about a minute").
VANISHED_CLIENT_SECONDS = 60
# Connections per process. Each day being worked holds one for its claim as long as it runs (and,
# while it exports, one more for the export's query); several days may run at once (an earlier day
# retried beside today's, each in a thread of its own), beside the polls, mail and the pages.
POOL_SIZE = 10


class PsycopgStore:
    """Connections come from a pool opened on first use; ``close()`` ends them."""

    def __init__(
        self,
        url: str,
        *,
        schema: str = "warehouse",
        invoice_view: str = "public.invoice_view",
        connect_timeout: float = 10.0,
        pool_size: int = POOL_SIZE,
        timezone: str = "UTC",
        vanished_client_seconds: int = VANISHED_CLIENT_SECONDS,
    ) -> None:
        self.timezone = timezone
        # The password apart from the URL: libpq quotes a URL it cannot parse, password and all (SPEC §8).
        self.url, self._password = url_password(url)
        self.schema = schema
        self.invoice_view = invoice_view
        self.connect_timeout = connect_timeout
        self.pool_size = pool_size
        self.vanished_client_seconds = vanished_client_seconds
        self._connections = Connections(url, self.connection_options(), size=pool_size, wait=connect_timeout)
        self._claims: Dict[dt.date, psycopg.Connection] = {}  # the connection holding each claimed day's lock

    def connection_options(self) -> Dict[str, Any]:
        # The export turns dates, times and intervals into text on the server: these settings fix
        # that text whatever the customer's server or database defaults are (SPEC §8).
        pinned = {
            "search_path": "{},public".format(self.schema),
            "timezone": self.timezone,
            "datestyle": "ISO",
            "intervalstyle": "postgres",
            "extra_float_digits": "1",
            **self._server_side_limits(),
        }
        return {
            "options": " ".join("-c {}={}".format(name, value) for name, value in pinned.items()),
            "connect_timeout": max(1, int(self.connect_timeout)),
            "application_name": "warehouse-invoice-service",
            **self._silence_limits(),
            **({} if self._password is None else {"password": self._password}),
        }

    def _server_side_limits(self) -> Dict[str, str]:
        """How long the server keeps the backend of a client it no longer hears: about
        ``vanished_client_seconds``, instead of the server's system keepalive (about two hours).

        The advisory locks (the poll lock, each session's claim) live as long as their backend:
        when a network blip cuts a client off, or its host dies without a reset, nothing tells the
        server, whose backend would hold the lock, stall the session and skip the polls for hours.
        With these the server's kernel probes a connection quiet for a quarter of the time and
        gives it up when nothing acknowledged the probes (nor any data it sent) for the whole time;
        PostgreSQL then ends the backend, which releases its locks. A client that is merely busy
        is not cut: its kernel answers the probes whatever the process does. Every user may set
        these (PGC_USERSET), on any server from PostgreSQL 12; Unix sockets ignore them.
        """
        seconds = max(2, int(self.vanished_client_seconds))
        idle = max(1, seconds // 4)
        interval = max(1, seconds // 8)
        return {
            "tcp_keepalives_idle": str(idle),
            "tcp_keepalives_interval": str(interval),
            # Where the kernel has no TCP_USER_TIMEOUT: the probes alone fill the time.
            "tcp_keepalives_count": str(max(1, (seconds - idle) // interval)),
            "tcp_user_timeout": str(seconds * 1000),
        }

    def _silence_limits(self) -> Dict[str, int]:
        """How long an open connection waits on a host that stopped answering: the connect timeout.

        A host that goes silent without a reset (a firewall that drops, a dead VM) would otherwise
        hold a query for the kernel's retransmissions (about 15 minutes) or, waiting for a reply,
        for the system's keepalive (about two hours). tcp_user_timeout (Linux) ends the connection when what it sent stays unacknowledged
        that long, and, with keepalives on, when the probes sent after ``keepalives_idle`` quiet
        seconds go unanswered that long. Neither cuts a long query or export: the server's kernel
        acknowledges data and probes whatever its backend is doing, and an export streams to us.
        What it does cut is a send stalled that long on a window the server keeps closed, such as
        a COPY FROM whose backend stops reading (recent Linux kernels count that as unanswered).
        Elsewhere only the keepalives apply: idle, then ``keepalives_count`` probes a second apart.
        """
        seconds = max(1, int(self.connect_timeout))
        return {
            "tcp_user_timeout": int(self.connect_timeout * 1000),
            "keepalives": 1,
            "keepalives_idle": seconds,
            "keepalives_interval": 1,
            "keepalives_count": seconds,
        }

    @property
    def pool(self) -> ConnectionPool:
        return self._connections.pool

    def close(self) -> None:
        self._connections.close()

    def connection(self) -> ContextManager[psycopg.Connection]:
        """A working pooled connection; DatabaseUnavailable at once when the database does not answer."""
        return self._connections.connection()

    @contextmanager
    def unit_of_work(self) -> Iterator[PsycopgUnitOfWork]:
        with self.connection() as connection:
            with connection.transaction():
                yield PsycopgUnitOfWork(connection, self.invoice_view)

    def exclusive_poll(self) -> ContextManager[bool]:
        return locks.advisory_lock(self.connection(), locks.poll_lock_key(self.schema))

    def poll_lock_held_for(self) -> Optional[dt.timedelta]:
        """Since the holder's connection took the lock and went idle (it runs nothing else while
        it holds it), measured on the server's clock only."""
        with self.connection() as connection:
            row = connection.execute(
                "SELECT clock_timestamp() - a.state_change FROM pg_locks AS l"
                " JOIN pg_stat_activity AS a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
                " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtext(%s)::bigint",
                (locks.poll_lock_key(self.schema),),
            ).fetchone()
        if row is None or row[0] is None:
            return None
        held: dt.timedelta = row[0]
        return max(held, dt.timedelta(0))

    @contextmanager
    def claim_session(self, day: dt.date) -> Iterator[bool]:
        with self.connection() as connection:
            with locks.advisory_lock(nullcontext(connection), locks.session_lock_key(self.schema, day)) as claimed:
                if claimed:
                    self._claims[day] = connection
                try:
                    yield claimed
                finally:
                    if claimed:
                        self._claims.pop(day, None)

    def still_claimed(self, day: dt.date) -> bool:
        """The lock lives as long as the connection that took it: held while that connection answers."""
        connection = self._claims.get(day)
        if connection is None:
            return False
        try:
            connection.execute("SELECT 1")
            connection.commit()
        except psycopg.Error:
            return False
        return True

    @contextmanager
    def export_lines(self, day: dt.date, columns: Sequence[str], skip: int) -> Iterator[Iterator[bytes]]:
        with self.connection() as connection:
            with export.export_blocks(connection, self.invoice_view, day, columns, skip) as blocks:
                yield blocks

    def ping(self) -> bool:
        """Through the pool, as the pages ask (SPEC §7)."""
        try:
            with self.connection() as connection:
                connection.execute("SELECT 1")
        except (DatabaseUnavailable, psycopg.Error):
            return False
        return True

    def missing_view_columns(self, export_columns: Sequence[str]) -> List[str]:
        """The columns the invoice view needs (the key, the date, the export's own) that it lacks."""
        # A connection of its own, not the pool's: a wrong password or a missing view is said at
        # once, in PostgreSQL's words, rather than after the pool's timeout.
        with psycopg.connect(self.url, **self.connection_options()) as connection:
            try:
                cursor = connection.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(qualified(self.invoice_view)))
            except psycopg.errors.UndefinedTable:
                raise ConfigurationError(
                    "invalid configuration: WAREHOUSE_INVOICE_VIEW names {}, which does not exist".format(
                        self.invoice_view
                    )
                ) from None
            present = {column.name for column in cursor.description or ()}
        return sorted(set(view_columns_needed(export_columns)) - present)

    def migrate(self) -> List[str]:
        """Apply the migrations not yet applied, in order, under a lock; the versions applied."""
        with psycopg.connect(self.url, **self.connection_options()) as connection:
            return migrations.migrate(connection, self.schema)
