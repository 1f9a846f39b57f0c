"""The connection pool, made to face a database that goes away and comes back (SPEC §10).

psycopg_pool alone waits its whole timeout when the server refuses, and once the server is back it
reconnects on an exponential backoff (1, 2, 4 … s) and checks stale connections one at a time on
the same backoff: pages hung 30 s while PostgreSQL was stopped, then failed for about 45 s after it
was back. Here a connection that fails its check, or a checkout that times out, asks the server
directly, once: when it does not answer, the caller gets DatabaseUnavailable at once (and the next
callers too, each after one quick try); when it does answer, the pool is replaced by a fresh one,
free of stale connections and of backoff.

A checkout has one deadline, the connect timeout, shared by its steps, so that a host gone silent
(no refusal, no reset) is given up within it too: a pooled connection's check waits for the answer
no longer than the deadline, and silence there means down, with no direct try after it; a pool with
no connection to give and none lent out is asked about directly before it is waited on, since
waiting on it would spend the whole deadline before the direct try began; a pool whose connections
are all lent out is waited on for all but the direct try's time (at most half the deadline), and the
direct try then tells busy from down.
"""

from __future__ import annotations

import enum
import logging
import selectors
import threading
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, NoReturn, Optional, Tuple

import psycopg
from psycopg import pq
from psycopg_pool import ConnectionPool, PoolTimeout

from warehouse_core.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
# The longest a request waits for a pooled connection: the pool holds a few connections that
# requests hold for milliseconds, so a longer wait means trouble, not a queue.
CHECKOUT_WAIT_CAP = 5.0
# libpq's shortest connect timeout: the time a direct try may take, kept free of a busy pool's wait.
DIRECT_TRY_SECONDS = 2.0


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
        self._lent = 0  # connections given out by connection() and not yet back

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
        self._count_lent(1)
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
            self._count_lent(-1)

    def _count_lent(self, change: int) -> None:
        with self._lock:
            self._lent += change

    def _checkout(self) -> Tuple[ConnectionPool, psycopg.Connection]:
        deadline = time.monotonic() + self.wait
        if self._down:
            self._require_an_answer(deadline)
            pool = self._replace(self.pool)  # back: the old pool may still be waiting out its backoff
            return pool, self._getconn_answered(pool, deadline)
        pool = self.pool
        connection = self._getconn(pool, deadline)
        hearing = _hear_back(connection, deadline)
        if hearing is Hearing.ANSWERED:
            return pool, connection
        connection.close()  # a late answer must not reach the connection's next user
        pool.putconn(connection)  # closed: the pool drops it
        if hearing is Hearing.SILENCE:
            self._give_up("no answer within {:g} s".format(self.wait))
        self._require_an_answer(deadline)
        # The server answers, so it restarted: every idle connection is as stale as that one.
        pool = self._replace(pool)
        return pool, self._getconn_answered(pool, deadline)

    def _getconn(self, pool: ConnectionPool, deadline: float) -> psycopg.Connection:
        if self._lent == 0 and pool.get_stats().get("pool_available", 0) == 0:
            # Starting, or failing to connect (then waiting would spend the deadline before a direct
            # try): ask first. A pool that only starts costs one quick extra connection.
            self._require_an_answer(deadline)
            return self._getconn_answered(pool, deadline)
        try:
            return pool.getconn(timeout=_left(deadline, keep=min(DIRECT_TRY_SECONDS, self.wait / 2)))
        except PoolTimeout:
            self._require_an_answer(deadline)
            raise DatabaseUnavailable(
                "no database connection came free within {:g} s: the database is busy".format(self.wait)
            ) from None

    def _getconn_answered(self, pool: ConnectionPool, deadline: float) -> psycopg.Connection:
        """A connection once the server has answered a direct try: the pool's is moments away,
        unless the pool is waiting out a backoff (then the next checkout replaces it)."""
        try:
            return pool.getconn(timeout=_left(deadline))
        except PoolTimeout:
            self._give_up("no connection within {:g} s".format(self.wait))

    def _require_an_answer(self, deadline: float) -> None:
        """Return when the server accepts a connection before ``deadline``; else remember it is down and raise."""
        seconds = max(1, round(_left(deadline)))  # libpq counts whole seconds, and at least 2
        try:
            psycopg.connect(self.url, **dict(self.options, connect_timeout=seconds)).close()
        except psycopg.Error as error:
            # PostgreSQL's reason (refused, timed out, password refused) names no password.
            self._give_up(_one_line(error))

    def _give_up(self, reason: str) -> NoReturn:
        if not self._down:
            log.warning("the database does not answer: %s", reason)
        self._down = True
        raise DatabaseUnavailable("the database does not answer: {}".format(reason)) from None

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


class Hearing(enum.Enum):
    ANSWERED = "answered"
    FAILED = "failed"  # an error at once: a connection the server closed, as after its restart
    SILENCE = "silence"  # nothing by the deadline: a host that stopped answering


def _hear_back(connection: psycopg.Connection, deadline: float) -> Hearing:
    """Send an empty query and wait for its answer until ``deadline``.

    psycopg_pool's check waits as long as the socket stays open: tcp_user_timeout after the checkout
    began when nothing acknowledges the query, for ever when a hung server's or proxy's kernel
    takes it and nothing answers it.
    """
    pgconn = connection.pgconn
    try:
        pgconn.send_query(b"")
        while pgconn.flush():  # 1 while part of the query is still to send
            if not _ready(pgconn.socket, selectors.EVENT_WRITE, deadline):
                return Hearing.SILENCE
        pgconn.consume_input()
        while pgconn.is_busy():
            if not _ready(pgconn.socket, selectors.EVENT_READ, deadline):
                return Hearing.SILENCE
            pgconn.consume_input()
        answered = True
        result = pgconn.get_result()
        while result is not None:
            answered = answered and result.status != pq.ExecStatus.FATAL_ERROR
            result = pgconn.get_result()
    except psycopg.Error:
        return Hearing.FAILED
    return Hearing.ANSWERED if answered else Hearing.FAILED


def _ready(socket: int, event: int, deadline: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(socket, event)
        return bool(selector.select(_left(deadline)))


def _left(deadline: float, keep: float = 0.0) -> float:
    """Seconds until ``deadline``, less ``keep`` (never below zero)."""
    return max(0.0, deadline - time.monotonic() - keep)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
