"""Each imported file's lines and category links in partitions of their own (migrations 007, 011).

The links are ``category_lines``, one row per category with its line numbers in an array (011);
``invoice_line_category`` is a view over it. An import creates two plain tables, copies into
them (FREEZE: they were created in the same subtransaction, so no later pass sets hint bits),
builds their keys in one sorted pass each, then attaches them as the partitions of its one file id. Their CHECK constraint is the partition's
bound, so the attach scans nothing; it takes SHARE UPDATE EXCLUSIVE on the parents, which readers
do not wait for. A rejected file's savepoint rolls the two tables back with its rows.

The retention drops a file's two partitions (an instant, whatever their size); the rows stored
before migration 007 sit in the partitions ``*_before_007`` and are deleted row by row.
"""

from __future__ import annotations

import datetime as dt
from typing import Tuple

import psycopg
from psycopg import sql

LINES = "invoice_line"
LINKS = "category_lines"
# How long the retention waits for the parents' lock (ACCESS EXCLUSIVE, an instant once held)
# behind a running query, such as an export, before it gives up until its next run.
DROP_LOCK_TIMEOUT = "5s"
# For the key build of the lines of one import: a 1M-line file's keys sort in memory (the default
# 64MB spills them to disk). Only for the import's own transaction.
BUILD_MEMORY = "256MB"


def partition_names(day: dt.date, file_id: int) -> Tuple[str, str]:
    """The names of the file's lines and links partitions: the day first, for the DBA's eye."""
    suffix = "_{}_{}".format(day.strftime("%Y%m%d"), file_id)
    return LINES + suffix, LINKS + suffix


def create_partitions(connection: psycopg.Connection, day: dt.date, file_id: int) -> Tuple[str, str]:
    """The two empty tables for the file's rows, without keys yet; their names."""
    bound = sql.SQL("CHECK (file_id >= {0} AND file_id < {1})").format(sql.Literal(file_id), sql.Literal(file_id + 1))
    names = partition_names(day, file_id)
    for parent, name in zip((LINES, LINKS), names):
        connection.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS, {})").format(
                sql.Identifier(name), sql.Identifier(parent), bound
            )
        )
    return names


def attach_partitions(connection: psycopg.Connection, day: dt.date, file_id: int) -> None:
    """The keys, each built in one sorted pass over the copied rows, then the attach."""
    lines, links = partition_names(day, file_id)
    connection.execute("SELECT set_config('maintenance_work_mem', %s, true)", (BUILD_MEMORY,))
    connection.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (file_id, line_number)").format(sql.Identifier(lines)))
    connection.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (category_id, file_id)").format(sql.Identifier(links)))
    for parent, name in ((LINES, lines), (LINKS, links)):
        connection.execute(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(parent), sql.Identifier(name), sql.Literal(file_id), sql.Literal(file_id + 1)
            )
        )


def drop_file_rows(connection: psycopg.Connection, day: dt.date, file_id: int) -> bool:
    """Remove the file's lines and links: its partitions dropped, or its rows of before 007
    deleted. False when there was nothing (a rejected file, or removed before)."""
    names = partition_names(day, file_id)
    found = connection.execute("SELECT count(to_regclass(n)) FROM unnest(%s::text[]) AS n", (list(names),)).fetchone()
    if found and found[0]:
        # Dropping a partition detaches it: the parents' lock for an instant, no row read.
        previous = connection.execute("SELECT current_setting('lock_timeout')").fetchone()
        connection.execute("SELECT set_config('lock_timeout', %s, true)", (DROP_LOCK_TIMEOUT,))
        connection.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(*map(sql.Identifier, names)))
        connection.execute("SELECT set_config('lock_timeout', %s, true)", (previous[0] if previous else "0",))
        return True
    deleted = 0
    for table in (LINKS, LINES):
        deleted += connection.execute(
            sql.SQL("DELETE FROM {} WHERE file_id = %s").format(sql.Identifier(table)), (file_id,)
        ).rowcount
    return deleted > 0
