"""The migration runner: the plain SQL files in ``sql/``, applied in order.

Each file records itself in ``schema_migration`` as its last statement (SPEC §10), so a DBA who
applies the files by hand with psql leaves a schema this runner finds up to date. The runner
checks that a file it applied did record itself. Each file sets its own lock_timeout: one that
gives up on a lock raises MigrationBlocked, and the whole run is rolled back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List

import psycopg
from psycopg import sql

from warehouse_core.adapters.postgres.locks import MIGRATION_LOCK, lock_for_transaction
from warehouse_core.errors import ConfigurationError, MigrationBlocked

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "sql"


def migrate(connection: psycopg.Connection, schema: str) -> List[str]:
    """Apply the migrations not yet applied to ``schema``, in order, under a lock; the versions applied."""
    applied: List[str] = []
    with connection.transaction():
        lock_for_transaction(connection, MIGRATION_LOCK)
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        connection.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema)))
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
            try:
                connection.execute(statements)
            except psycopg.errors.LockNotAvailable:  # the file's own lock_timeout
                raise MigrationBlocked(
                    "migration {} gave up waiting for a lock that another transaction holds on the"
                    " service's tables (a long query or an idle transaction): nothing was changed;"
                    " it is applied at the next start once that transaction has ended".format(version)
                ) from None
            if not _recorded(connection, version):
                raise ConfigurationError("migration {} does not record itself in schema_migration".format(path.name))
            applied.append(version)
    for version in applied:
        log.info("migration %s applied to schema %s", version, schema)
    return applied


def _recorded(connection: psycopg.Connection, version: str) -> bool:
    row = connection.execute("SELECT EXISTS (SELECT 1 FROM schema_migration WHERE version = %s)", (version,)).fetchone()
    return bool(row and row[0])
