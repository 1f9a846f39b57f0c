"""Migration 006 against PostgreSQL: a day redelivered before the ledger existed holds its invoices (review A, issue 18)."""

from __future__ import annotations

import psycopg

from tests.integration.test_database_by_hand import apply_by_hand, empty_schema  # noqa: F401 (fixture)
from warehouse_core.adapters.postgres import PsycopgStore
from warehouse_core.adapters.postgres.migrations import MIGRATIONS


def test_migration_006_holds_the_invoices_of_a_day_retried_with_redeliver_before_the_ledger(
    postgres_server,
    empty_schema,  # noqa: F811
):
    """Ships twice: before 006, a day failed while watching (its file reached the consumer) and ops
    ran `session retry --day D --redeliver`: the old retry recorded nothing and reset the session to
    ready with phase NULL (and, issue 18 item 8, Start never started a past day, so it sat there).
    006's backfill reads only state and phase: the day gets delivery NULL and holds nothing, so the
    next day whose file carries the same invoices exports them again. The day's events say it:
    a session-retried event with "redeliver": true (and the failed run's export file)."""
    for path in sorted(path for path in MIGRATIONS.glob("*.sql") if path.stem < "006"):
        apply_by_hand(postgres_server, empty_schema, path)
    day = "2026-10-05"
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute('SET search_path TO "{}"'.format(empty_schema))
        connection.execute(
            "INSERT INTO inbound_file (id, name, day, source, sha256, actual_lines, status)"
            " VALUES (1, 'Letture1.txt', %s, 'ftp', %s, 1, 'imported')",
            (day, "{:064d}".format(1)),
        )
        connection.execute(
            "INSERT INTO invoice_line (file_id, line_number, day, invoice_number, quantity, description, value,"
            " invoice_status) VALUES (1, 1, %s, '600000101', 1, 'noci', 1.5, 'valid')",
            (day,),
        )
        connection.execute("INSERT INTO work_session (day, state, phase) VALUES (%s, 'ready', NULL)", (day,))
        connection.execute(
            "INSERT INTO event (day, at, kind, actor, detail) VALUES (%s, now(), 'session-failed', 'system',"
            ' \'{"reason": "the remote log reports 5 records read from S.txt, but 6 were written"}\'),'
            " (%s, now(), 'session-retried', 'cli:ops', '{\"reason\": \"again\", \"redeliver\": true}')",
            (day, day),
        )
    store = PsycopgStore(postgres_server, schema=empty_schema)
    try:
        assert "006_delivery_ledger" in store.migrate()
        with store.connection() as connection:
            held = connection.execute("SELECT invoice_number, day::text FROM exported_invoice").fetchall()
            delivery = connection.execute("SELECT delivery FROM work_session").fetchone()[0]
        assert delivery == "yes" and held == [("600000101", day)]  # fails: None and []
    finally:
        store.close()
