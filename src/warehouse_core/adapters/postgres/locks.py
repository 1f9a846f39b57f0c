"""Advisory locks on PostgreSQL: held by a session on its own connection, so they die with the process."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from typing import ContextManager, Iterator

import psycopg

MIGRATION_LOCK = "warehouse-migrate"
POLL_LOCK = "warehouse-poll"
SESSION_LOCK = "warehouse-session"


def poll_lock_key(schema: str) -> str:
    return "{}:{}".format(POLL_LOCK, schema)


def session_lock_key(schema: str, day: dt.date) -> str:
    return "{}:{}:{}".format(SESSION_LOCK, schema, day.isoformat())


@contextmanager
def advisory_lock(connections: ContextManager[psycopg.Connection], key: str) -> Iterator[bool]:
    """Try a session-level lock on a connection of its own; yields whether it was acquired.
    Released at the end, or by PostgreSQL when the process dies."""
    with connections as connection:
        row = connection.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()
        acquired = bool(row and row[0])
        connection.commit()
        try:
            yield acquired
        finally:
            if acquired and not connection.broken:  # a broken connection took its lock with it
                connection.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
                connection.commit()


def lock_for_transaction(connection: psycopg.Connection, key: str) -> None:
    """Wait for a lock that the current transaction holds until it ends."""
    connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
