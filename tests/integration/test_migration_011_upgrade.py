"""Migration 011 (links as arrays, invoice_line_category a view) on a database that a
customer's previous release made and may still be using while the new release migrates it."""

from __future__ import annotations

from typing import Iterator

import psycopg
import pytest

from tests.integration.test_database_by_hand import apply_by_hand
from warehouse_core.adapters.postgres import PsycopgStore
from warehouse_core.adapters.postgres.migrations import MIGRATIONS

ARRAYS = MIGRATIONS / "011_category_line_arrays.sql"
DROP_OLD_LINKS = "ALTER TABLE invoice_line_category RENAME TO invoice_line_category_before_011;"


@pytest.fixture
def schema_010(postgres_server: str, db_schema: str) -> Iterator[str]:
    """A schema as the release before 011 left it (001 to 010 by hand), with one imported day in
    partitions of its own (file 6), as that release imported it."""
    try:
        for migration in sorted(MIGRATIONS.glob("*.sql")):
            if migration.stem < "011":
                apply_by_hand(postgres_server, db_schema, migration)
        with psycopg.connect(postgres_server, autocommit=True) as connection:
            connection.execute('SET search_path TO "{}"'.format(db_schema))
            connection.execute("INSERT INTO category (name) VALUES ('frutta secca'), ('pane')")
            old_release_import(connection, 6, "20261006")
        yield db_schema
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as connection:
            connection.execute('DROP SCHEMA IF EXISTS "{}" CASCADE'.format(db_schema))
            connection.execute("DROP ROLE IF EXISTS rev4b_reporter")


def old_release_import(connection: psycopg.Connection, file_id: int, day: str) -> None:
    """What the release before 011 (partitions.py at 294ad15) does for one imported file: two plain
    tables LIKE the parents, their rows, their keys, then the attach; 3 lines, 2 links each."""
    suffix = "_{}_{}".format(day, file_id)
    with connection.transaction():
        connection.execute(
            "INSERT INTO inbound_file (id, name, day, source, sha256, actual_lines, status)"
            " VALUES (%s, %s, %s, 'ftp', %s, 4, 'imported')",
            (file_id, "Letture{}.txt".format(day), day, str(file_id) * 64),
        )
        for parent in ("invoice_line", "invoice_line_category"):
            connection.execute(
                "CREATE TABLE {0}{1} (LIKE {0} INCLUDING DEFAULTS INCLUDING CONSTRAINTS,"
                " CHECK (file_id >= {2} AND file_id < {3}))".format(parent, suffix, file_id, file_id + 1)
            )
        connection.execute(
            "INSERT INTO invoice_line{0} (file_id, line_number, day, invoice_number, quantity, description, value,"
            " invoice_status) SELECT %s, n, %s, '60000000' || n, n, 'x', n, 'valid'"
            " FROM generate_series(2, 4) n".format(suffix),
            (file_id, day),
        )
        connection.execute(
            "INSERT INTO invoice_line_category{0} SELECT c.id, %s, n FROM category c, generate_series(2, 4) n".format(
                suffix
            ),
            (file_id,),
        )
        connection.execute("ALTER TABLE invoice_line{} ADD PRIMARY KEY (file_id, line_number)".format(suffix))
        connection.execute(
            "ALTER TABLE invoice_line_category{} ADD PRIMARY KEY (category_id, file_id, line_number)".format(suffix)
        )
        for parent in ("invoice_line", "invoice_line_category"):
            connection.execute(
                "ALTER TABLE {0} ATTACH PARTITION {0}{1} FOR VALUES FROM ({2}) TO ({3})".format(
                    parent, suffix, file_id, file_id + 1
                )
            )


def links_of(connection: psycopg.Connection, file_id: int) -> int:
    return int(
        connection.execute("SELECT count(*) FROM invoice_line_category WHERE file_id = %s", (file_id,)).fetchone()[0]
    )


def test_an_old_runner_importing_while_011_converts_loses_no_link(postgres_server, schema_010):
    """A rolling deploy: the new release's migrate (at its start, SPEC §9) runs 011 while the old
    runner imports the next day. 011 must either keep that day's links or make the old import wait
    or fail; it must not commit a day whose lines are stored and whose links are dropped."""
    before, after = ARRAYS.read_text(encoding="utf-8").split(DROP_OLD_LINKS)
    with psycopg.connect(postgres_server) as migration, psycopg.connect(postgres_server, autocommit=True) as old:
        for connection in (migration, old):
            connection.execute('SET search_path TO "{}"'.format(schema_010))
        migration.execute(before.encode("utf-8"))  # 011 up to its DROP: the conversion loop done
        old.execute("SET lock_timeout = '1s'")  # an old import 011 makes wait gives up, not hangs
        try:
            old_release_import(old, 7, "20261007")
            old_imported = True
        except psycopg.errors.LockNotAvailable:
            old_imported = False
        migration.execute((DROP_OLD_LINKS + after).encode("utf-8"))
        migration.commit()
        lines = old.execute("SELECT count(*) FROM invoice_line WHERE file_id = 7").fetchone()[0]
        assert (old_imported, lines) in ((True, 3), (False, 0))
        if old_imported:
            assert links_of(old, 7) == 6, "day 7's lines are stored, its category links were dropped by 011"
        assert links_of(old, 6) == 6


def test_011_keeps_the_dbas_grants_on_invoice_line_category(postgres_server, schema_010):
    """A DBA gave a reporting role SELECT on the link table (the docs invite their queries): after
    011 the same role still reads invoice_line_category."""
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute('SET search_path TO "{}"'.format(schema_010))
        connection.execute("CREATE ROLE rev4b_reporter")
        connection.execute('GRANT USAGE ON SCHEMA "{}" TO rev4b_reporter'.format(schema_010))
        connection.execute("GRANT SELECT ON invoice_line_category TO rev4b_reporter")
    store = PsycopgStore(postgres_server, schema=schema_010)
    try:
        assert store.migrate() == ["011_category_line_arrays"]
    finally:
        store.close()
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        assert connection.execute(
            "SELECT has_table_privilege('rev4b_reporter', %s, 'SELECT')",
            ('"{}".invoice_line_category'.format(schema_010),),
        ).fetchone() == (True,)


def test_011_on_a_database_with_a_dbas_view_over_the_links_names_it_and_what_to_do(postgres_server, schema_010):
    """A DBA's own view over invoice_line_category: 011 cannot drop the table under it. The start
    must say which view and what to do (and say it before converting every partition), not only
    "cannot drop table ... other objects depend on it" at every start."""
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute('SET search_path TO "{}"'.format(schema_010))
        connection.execute(
            "CREATE VIEW lines_per_category AS SELECT category_id, count(*) FROM invoice_line_category GROUP BY 1"
        )
    store = PsycopgStore(postgres_server, schema=schema_010)
    try:
        with pytest.raises(Exception) as raised:
            store.migrate()
    finally:
        store.close()
    assert "lines_per_category" in str(raised.value)
