"""The connection pool, made to face a database that goes away and comes back (SPEC §10).

psycopg_pool alone waits its whole timeout when the server refuses, and once the server is back it
reconnects on an exponential backoff (1, 2, 4 … s) and checks stale connections one at a time on
the same backoff: pages hung 30 s while PostgreSQL was stopped, then failed for about 45 s after it
was back. Here a connection that fails its check, or a checkout that times out, asks the server
directly, once: when it does not answer, the caller gets DatabaseUnavailable at once (and the next
callers too, each after one quick try); when it does answer, the pool is replaced by a fresh one,
free of stale connections and of backoff.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional, Tuple

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from warehouse_core.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
# The longest a request waits for a pooled connection: the pool holds a few connections that
# requests hold for milliseconds, so a longer wait means trouble, not a queue.
CHECKOUT_WAIT_CAP = 5.0


class Connections:
    """A psycopg_pool opened on first use, replaced when the database comes back; ``close()`` ends it."""

    def __init__(self, url: str, options: Dict[str, Any], *, size: int, wait: float) -> None:
        self.url = url
        self.options = options
        self.size = size
        self.wait = min(wait, CHECKOUT_WAIT_CAP)
        self._pool: Optional[ConnectionPool] = None
        self._lock = threading.Lock()  # threads asking at once would each open a pool and leak all but one
        self._down = False

    @property
    def pool(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                self._pool = self._open()
            return self._pool

    def _open(self) -> ConnectionPool:
        # No check= here: psycopg_pool's check retries on a backoff; _checkout checks instead.
        return ConnectionPool(
            self.url,
            min_size=1,
            max_size=self.size,
            kwargs=self.options,
            timeout=self.wait,
            open=True,
            name="warehouse",
        )

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A working connection, committed at the end of the block (rolled back on an error)."""
        pool, connection = self._checkout()
        try:
            with connection:
                yield connection
        except psycopg.OperationalError as error:
            if connection.broken:  # the server went away in the middle of the block
                log.warning("the database connection was lost: %s", _one_line(error))
                raise DatabaseUnavailable("the database connection was lost: {}".format(_one_line(error))) from None
            raise
        finally:
            pool.putconn(connection)

    def _checkout(self) -> Tuple[ConnectionPool, psycopg.Connection]:
        if self._down:
            self._require_an_answer()
            self._replace(self.pool)  # back: the old pool may still be waiting out its backoff
        pool = self.pool
        connection = self._getconn(pool)
        if _works(connection):
            return pool, connection
        pool.putconn(connection)  # broken: the pool drops it
        self._require_an_answer()
        # The server answers, so it restarted: every idle connection is as stale as that one.
        pool = self._replace(pool)
        return pool, self._getconn(pool)

    def _getconn(self, pool: ConnectionPool) -> psycopg.Connection:
        try:
            return pool.getconn(timeout=self.wait)
        except PoolTimeout:
            self._require_an_answer()
            raise DatabaseUnavailable(
                "no database connection came free within {:g} s: the database is busy".format(self.wait)
            ) from None

    def _require_an_answer(self) -> None:
        """Return when the server accepts a connection now; else remember it is down and raise."""
        try:
            psycopg.connect(self.url, **self.options).close()
        except psycopg.Error as error:
            if not self._down:
                log.warning("the database does not answer: %s", _one_line(error))
            self._down = True
            # PostgreSQL's reason (refused, timed out, password refused) names no password.
            raise DatabaseUnavailable("the database does not answer: {}".format(_one_line(error))) from None

    def _replace(self, stale: ConnectionPool) -> ConnectionPool:
        with self._lock:
            if self._down:
                log.info("the database answers again")
            self._down = False
            if self._pool is stale:  # not already replaced by another thread
                self._pool = self._open()
                threading.Thread(target=stale.close, kwargs={"timeout": 1.0}, name="pool-close", daemon=True).start()
            if self._pool is None:
                self._pool = self._open()
            return self._pool


def _works(connection: psycopg.Connection) -> bool:
    try:
        ConnectionPool.check_connection(connection)
    except psycopg.Error:
        return False
    return True


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
