"""What docs/dba.md tells a DBA to do by hand works against a real PostgreSQL (SPEC §10)."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import psycopg
import pytest

from warehouse_core.adapters.postgres import PsycopgStore
from warehouse_core.adapters.postgres.migrations import MIGRATIONS
from warehouse_core.adapters.postgres.partitions import attach_partitions, create_partitions, drop_file_rows
from warehouse_core.model import (
    Attachment,
    Delivery,
    FileSource,
    FileStatus,
    InboundFileRecord,
    InvoiceLine,
    InvoiceStatus,
    Mail,
    MailEvent,
)
from warehouse_core.parsing import blocks_of

ROOT = Path(__file__).resolve().parents[2]
DBA_PAGE = ROOT / "docs" / "dba.md"
PSQL = shutil.which("psql")


@pytest.fixture
def empty_schema(postgres_server: str, db_schema: str) -> Iterator[str]:
    try:
        yield db_schema
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as connection:
            connection.execute('DROP SCHEMA IF EXISTS "{}" CASCADE'.format(db_schema))


def apply_by_hand(url: str, schema: str, migration: Path) -> None:
    """What docs/dba.md says, typed into psql: the file as one transaction that stops at its first
    error, after setting the path (and creating the schema)."""
    if PSQL:
        subprocess.run(
            [
                PSQL,
                url,
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "--single-transaction",
                "-c",
                'CREATE SCHEMA IF NOT EXISTS "{}"'.format(schema),
                "-c",
                'SET search_path TO "{}"'.format(schema),
                "-f",
                str(migration),
            ],
            text=True,
            check=True,
            capture_output=True,
        )
        return
    with psycopg.connect(url) as connection:  # no psql here: the same statements by psycopg, one transaction
        connection.execute('CREATE SCHEMA IF NOT EXISTS "{0}"'.format(schema))
        connection.execute('SET search_path TO "{0}"'.format(schema))
        connection.execute(migration.read_bytes())


def test_a_schema_applied_by_hand_is_up_to_date_for_migrate_and_the_services(postgres_server, empty_schema):
    for migration in sorted(MIGRATIONS.glob("*.sql")):
        apply_by_hand(postgres_server, empty_schema, migration)
    store = PsycopgStore(postgres_server, schema=empty_schema)
    try:
        assert store.migrate() == []
        with store.unit_of_work() as uow:
            assert uow.running_days() == []
        with store.connection() as connection:
            recorded = [row[0] for row in connection.execute("SELECT version FROM schema_migration ORDER BY version")]
        assert recorded == [path.stem for path in sorted(MIGRATIONS.glob("*.sql"))]
    finally:
        store.close()


@pytest.mark.skipif(PSQL is None, reason="needs psql, as the DBA page does")
def test_the_dba_pages_commands_apply_the_schema(postgres_server, empty_schema):
    """The shell block of docs/dba.md, run as printed from the checkout's root with psql's
    environment pointing at the test server and the test's schema in place of `warehouse`."""
    block = DBA_PAGE.read_text(encoding="utf-8").split("```sh\n", 1)[1].split("```", 1)[0]
    assert "TO warehouse'" in block and "SCHEMA warehouse'" in block
    server = psycopg.conninfo.conninfo_to_dict(postgres_server)
    environment = dict(
        os.environ,
        PGHOST=str(server.get("host", "")),
        PGPORT=str(server.get("port", "")),
        PGUSER=str(server.get("user", "")),
        PGPASSWORD=str(server.get("password", "")),
        PGDATABASE=str(server.get("dbname", "")),
    )
    script = block.replace("SCHEMA warehouse'", "SCHEMA {}'".format(empty_schema)).replace(
        "TO warehouse'", "TO {}'".format(empty_schema)
    )
    subprocess.run(["bash", "-e", "-c", script], cwd=str(ROOT), env=environment, check=True, capture_output=True)
    store = PsycopgStore(postgres_server, schema=empty_schema)
    try:
        assert store.migrate() == []
        with store.connection() as connection:
            recorded = [row[0] for row in connection.execute("SELECT version FROM schema_migration ORDER BY version")]
        assert recorded == [path.stem for path in sorted(MIGRATIONS.glob("*.sql"))]
    finally:
        store.close()


def test_migrate_records_each_migration_once(real_store):
    with real_store.connection() as connection:
        versions = [row[0] for row in connection.execute("SELECT version FROM schema_migration ORDER BY version")]
    assert versions == [path.stem for path in sorted(MIGRATIONS.glob("*.sql"))]
    assert real_store.migrate() == []


def readme_dba_queries() -> List[str]:
    text = DBA_PAGE.read_text(encoding="utf-8")
    section = text[text.index("Useful queries for the DBA") :]
    block = re.search(r"```sql\n(.*?)```", section, re.S)
    assert block is not None
    statements = [part.strip() for part in block.group(1).split(";")]
    return [s for s in statements if any(not line.startswith("--") for line in s.splitlines() if line.strip())]


def test_the_readme_dba_queries_run_in_the_service_schema_and_find_what_they_promise(real_store):
    """One line of 'frutta secca' on today in Europe/Rome (WAREHOUSE_TIMEZONE's default), and one on
    each of the two days before, and one undelivered mail: each query finds its one row in a psql
    session whose own time zone gives another day. Of UTC+14 and UTC-12, whose dates always differ,
    one is on another day than Rome at any instant: the test holds whatever the time, and never reads
    the machine's clock. The day's query reads one partition of each table, by their keys: the other
    days' partitions are pruned before they are read."""
    with real_store.connection() as connection:
        today = connection.execute("SELECT (now() AT TIME ZONE 'Europe/Rome')::date").fetchone()[0]
        session_zone = next(
            zone
            for zone in ("Pacific/Kiritimati", "Etc/GMT+12")
            if connection.execute("SELECT (now() AT TIME ZONE %s)::date", (zone,)).fetchone()[0] != today
        )
    for day in (today - dt.timedelta(days=2), today - dt.timedelta(days=1), today):
        with real_store.unit_of_work() as uow:
            file_id = uow.record_file(
                InboundFileRecord(
                    name="Letture.txt",
                    day=day,
                    source=FileSource.UPLOAD,
                    sha256=day.isoformat(),
                    declared_count=1,
                    actual_lines=2,
                    status=FileStatus.IMPORTED,
                )
            )
            line = InvoiceLine(
                line_number=2,
                invoice_number="600000001",
                quantity=1,
                description="noci",
                value=Decimal("1.50"),
                categories=("frutta secca",),
            )
            uow.insert_lines(file_id, day, blocks_of([line]))
    with real_store.unit_of_work() as uow:
        uow.enqueue_mail(
            Mail(
                event=MailEvent.IMPORT_SUMMARY,
                day=today,
                subject="s",
                text="t",
                html="h",
                attachments=(Attachment(name="invoices.csv", media_type="text/csv", content="invoice,list\r\n"),),
            )
        )
        uow.open_session(today)
        uow.set_delivery(today, Delivery.UNKNOWN)
    queries = readme_dba_queries()
    assert len(queries) == 4
    with real_store.connection() as connection:
        connection.execute("SELECT set_config('TimeZone', %s, false)", (session_zone,))
        for query in queries:
            assert len(connection.execute(query).fetchall()) == 1, query
        connection.execute("SET enable_seqscan = off")  # a table of 3 rows would be read whole, not by its key
        [[plan]] = connection.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + queries[0]).fetchall()
    read = sorted(_relations_read(plan[0]["Plan"]))
    suffix = "_{:%Y%m%d}_{}".format(today, file_id)
    stored = [(name, how) for name, how in read if name.startswith(("invoice_line", "category_lines"))]
    assert [name for name, _ in stored] == ["category_lines" + suffix, "invoice_line" + suffix]
    assert all("Index" in how for _, how in stored), read


def _relations_read(node: Dict[str, Any]) -> Iterator[Tuple[str, str]]:
    """The tables a plan read, and how (a node the executor pruned is not in the plan it ran)."""
    if "Relation Name" in node and node.get("Actual Loops", 0) > 0:
        yield node["Relation Name"], node["Node Type"]
    for child in node.get("Plans", ()):
        yield from _relations_read(child)


OLD_DAY = "2026-10-05"
TABLES = (
    "inbound_file",
    "invoice_line",
    "category",
    "invoice_line_category",
    "work_session",
    "exported_invoice",
    "mail_outbox",
)


def test_migration_002_on_a_database_with_data_keeps_every_row_and_the_old_days_read_back(
    postgres_server, empty_schema
):
    """A customer's 001 database with a completed day in it: 002 changes none of its rows, and the
    history shows that day (its counts unknown, not 'does not reconcile'), /metrics reads it."""
    from warehouse_core.usecases.history import day_detail, list_days

    apply_by_hand(postgres_server, empty_schema, MIGRATIONS / "001_initial.sql")
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute('SET search_path TO "{}"'.format(empty_schema))
        connection.execute(
            "INSERT INTO inbound_file (id, name, day, source, sha256, declared_count, actual_lines, status, archive_path,"
            " received_at) VALUES (1, 'Letture20261005083015123_2.txt', %s, 'ftp', %s, 2, 3, 'imported',"
            " '2026-10-05/Letture20261005083015123_2.txt', '2026-10-05 08:31+02')",
            (OLD_DAY, "cd" * 32),
        )
        connection.execute(
            "INSERT INTO invoice_line (file_id, line_number, day, invoice_number, quantity, description, value,"
            " invoice_status) VALUES (1, 2, %s, '600000001', 1, 'noci', 1.5, 'valid'),"
            " (1, 3, %s, '600000002', 2, 'pane', 3, 'valid')",
            (OLD_DAY, OLD_DAY),
        )
        connection.execute(
            "INSERT INTO work_session (day, state, total, processed, started_at, finished_at, export_file)"
            " VALUES (%s, 'completed', 2, 2, '2026-10-05 09:00+02', '2026-10-05 09:05+02', 'Spedizioni20261005_2.txt')",
            (OLD_DAY,),
        )
        connection.execute(  # what the completed session recorded
            "INSERT INTO exported_invoice (invoice_number, day) VALUES ('600000001', %s), ('600000002', %s)",
            (OLD_DAY, OLD_DAY),
        )
        connection.execute(
            "INSERT INTO mail_outbox (event, day, subject, body_text, body_html, sent_at) VALUES"
            " ('session-completed', %s, 's', 't', 'h', '2026-10-05 09:06+02')",
            (OLD_DAY,),
        )
        columns = {
            table: ", ".join(
                row[0]
                for row in connection.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"
                    " ORDER BY ordinal_position",
                    (empty_schema, table),
                )
            )
            for table in TABLES
        }
        before = {
            t: connection.execute("SELECT {} FROM {} ORDER BY 1, 2".format(columns[t], t)).fetchall() for t in TABLES
        }
    store = PsycopgStore(postgres_server, schema=empty_schema)
    try:
        assert store.migrate() == [path.stem for path in sorted(MIGRATIONS.glob("*.sql"))][1:]
        with store.connection() as connection:
            for table in TABLES:  # the columns 001 had hold what they held
                after = connection.execute("SELECT {} FROM {} ORDER BY 1, 2".format(columns[table], table)).fetchall()
                assert after == before[table], table
        page = list_days(store)
        [row] = [day.as_dict() for day in page.days]
        assert (row["day"], row["state"], row["export_file"], row["mails"]) == (
            OLD_DAY,
            "completed",
            "Spedizioni20261005_2.txt",
            1,
        )
        assert row["stored"] is None and row["reconciled"] is None, "counts from before 002 are unknown, not wrong"
        detail = day_detail(store, page.days[0].day)
        assert detail.events == () and detail.file is not None and detail.file.lines == 3
        with store.unit_of_work() as uow:
            snapshot = uow.metrics_snapshot(page.days[0].day)
        assert snapshot.last_import_at is not None and snapshot.last_session_duration == 300.0
    finally:
        store.close()


def test_a_migration_behind_a_long_transaction_gives_up_soon_and_changes_nothing(postgres_server, empty_schema):
    """003 alters work_session: it waits for every transaction that read that table, and every
    query after it would queue behind it. With its lock_timeout the start fails in seconds with
    a line that says why, and starts cleanly once that transaction has ended."""
    from warehouse_core.errors import MigrationBlocked

    for migration in sorted(MIGRATIONS.glob("*.sql"))[:2]:
        apply_by_hand(postgres_server, empty_schema, migration)
    store = PsycopgStore(postgres_server, schema=empty_schema)
    outcome: List[BaseException] = []

    def migrate() -> None:
        try:
            store.migrate()
        except BaseException as error:
            outcome.append(error)

    blocker = psycopg.connect(postgres_server)
    try:
        blocker.execute('SELECT count(*) FROM "{}".work_session'.format(empty_schema))  # and stays in its transaction
        thread = threading.Thread(target=migrate, daemon=True)
        thread.start()
        thread.join(timeout=30)
        gave_up = not thread.is_alive()
    finally:
        blocker.rollback()
        blocker.close()
    thread.join(timeout=30)
    try:
        assert gave_up, "migrate still waited 30 s behind the open transaction"
        [error] = outcome
        assert isinstance(error, MigrationBlocked) and "003_session_tries" in str(error), error
        assert "\n" not in str(error)
        with psycopg.connect(postgres_server) as connection:
            versions = [
                row[0] for row in connection.execute('SELECT version FROM "{}".schema_migration'.format(empty_schema))
            ]
        assert sorted(versions) == ["001_initial", "002_history"], "nothing of 003 is half applied"
        assert store.migrate() == [path.stem for path in sorted(MIGRATIONS.glob("*.sql"))[2:]]  # 003 and later
    finally:
        store.close()


# Days as versions before 006 left them: (state, phase, detail) -> the delivery 006 gives them.
BEFORE_LEDGER = (
    ("completed", "watching", None, "yes"),
    ("failed", "watching", "no confirmation within 600 s", "yes"),
    ("running", "watching", None, "yes"),
    ("closed", "watching", "closed by an operator after S.txt was delivered to the outbound server", "yes"),
    ("closed", "renaming", "closed by an operator after S.txt was delivered to the outbound server; x", "yes"),
    (
        "closed",
        "renaming",
        "closed by an operator before S.txt was renamed into place: the consumer never saw it",
        "no",
    ),
    ("running", "renaming", None, "unknown"),
    ("failed", "renaming", "the upload failed after 3 tries", "unknown"),
    ("closed", "settling", "closed by an operator while S.txt was being renamed into place", "unknown"),
    ("failed", "uploading", "the upload failed after 3 tries", None),
    ("closed", "exporting", None, None),
    ("ready", None, None, None),
)


def test_migration_006_gives_each_earlier_day_its_delivery_and_holds_what_may_have_reached_the_consumer(
    postgres_server, empty_schema
):
    """SPEC §5 "The delivery ledger": a day that was watching, completed or closed after delivery
    is yes; one whose rename nobody settled is unknown; both hold their valid invoices (a day that
    failed while watching before did not record them); the rest hold nothing."""
    older = sorted(path for path in MIGRATIONS.glob("*.sql") if path.stem < "006")
    for path in older:
        apply_by_hand(postgres_server, empty_schema, path)
    days = ["2026-10-{:02d}".format(n + 1) for n in range(len(BEFORE_LEDGER))]
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute('SET search_path TO "{}"'.format(empty_schema))
        for n, (day, (state, phase, detail, _)) in enumerate(zip(days, BEFORE_LEDGER)):
            connection.execute(
                "INSERT INTO inbound_file (id, name, day, source, sha256, actual_lines, status)"
                " VALUES (%s, %s, %s, 'ftp', %s, 2, 'imported')",
                (n + 1, "Letture{}.txt".format(n), day, "{:064d}".format(n)),
            )
            connection.execute(
                "INSERT INTO invoice_line (file_id, line_number, day, invoice_number, quantity, description, value,"
                " invoice_status) VALUES (%s, 1, %s, %s, 1, 'noci', 1.5, 'valid'),"
                " (%s, 2, %s, '600000999', 1, 'noci', 1.5, 'not_found')",
                (n + 1, day, "6000001{:02d}".format(n), n + 1, day),
            )
            connection.execute(
                "INSERT INTO work_session (day, state, phase, export_file, detail) VALUES (%s, %s, %s, 'S.txt', %s)",
                (day, state, phase, detail),
            )
    store = PsycopgStore(postgres_server, schema=empty_schema)
    try:
        assert "006_delivery_ledger" in store.migrate()
        with store.connection() as connection:
            found = dict(connection.execute("SELECT day::text, delivery FROM work_session").fetchall())
            held = sorted(row[0] for row in connection.execute("SELECT day::text FROM exported_invoice"))
        assert [found[day] for day in days] == [row[3] for row in BEFORE_LEDGER]
        assert held == [day for day, row in zip(days, BEFORE_LEDGER) if row[3] in ("yes", "unknown")]
        with store.unit_of_work() as uow:
            assert uow.unknown_delivery_days() == [
                dt.date.fromisoformat(day) for day, row in zip(days, BEFORE_LEDGER) if row[3] == "unknown"
            ]
    finally:
        store.close()


LINES_AND_LINKS = (
    "SELECT l.file_id, l.line_number, l.day, l.invoice_number, l.quantity, l.description, l.value, l.invoice_status,"
    " array_agg(c.name ORDER BY c.name) FROM invoice_line l"
    " JOIN invoice_line_category lc ON lc.file_id = l.file_id AND lc.line_number = l.line_number"
    " JOIN category c ON c.id = lc.category_id GROUP BY 1, 2 ORDER BY 1, 2"
)


def test_migration_007_partitions_a_database_with_days_in_place_and_both_kinds_of_day_read_and_go(
    postgres_server, empty_schema
):
    """A database of the release before 007 holding two imported days: 007 keeps their rows where
    they are (one partition of each table), every query reads them as before; a day imported
    afterwards gets partitions of its own; the retention removes a day of either kind."""
    before_007 = [path for path in sorted(MIGRATIONS.glob("*.sql")) if path.stem < "007"]
    for migration in before_007:
        apply_by_hand(postgres_server, empty_schema, migration)
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute('SET search_path TO "{}"'.format(empty_schema))
        for file_id, day in ((1, "2026-10-05"), (2, "2026-10-06")):
            connection.execute(
                "INSERT INTO inbound_file (name, day, source, sha256, actual_lines, status)"
                " VALUES (%s, %s, 'ftp', %s, 3, 'imported')",
                ("Letture{}.txt".format(day), day, str(file_id) * 64),
            )
            connection.execute(
                "INSERT INTO invoice_line (file_id, line_number, day, invoice_number, quantity, description, value,"
                " invoice_status) VALUES (%s, 2, %s, '600000001', 1, 'noci', 1.5, 'valid'),"
                " (%s, 3, %s, '600000002', 2, 'pane', 3, 'not_found')",
                (file_id, day, file_id, day),
            )
        connection.execute("INSERT INTO category (name) VALUES ('frutta secca'), ('pane')")
        connection.execute(
            "INSERT INTO invoice_line_category SELECT c.id, l.file_id, l.line_number FROM invoice_line l"
            " JOIN category c ON c.name = CASE l.line_number WHEN 2 THEN 'frutta secca' ELSE 'pane' END"
        )
        before = connection.execute(LINES_AND_LINKS).fetchall()
    assert len(before) == 4
    store = PsycopgStore(postgres_server, schema=empty_schema)
    try:
        assert store.migrate() == [path.stem for path in sorted(MIGRATIONS.glob("*.sql")) if path.stem >= "007"]
        with store.connection() as connection:
            assert connection.execute(LINES_AND_LINKS).fetchall() == before
            kinds = stored_relations(connection)
        assert kinds == [  # 011 made the links arrays: the partition of before 007 keeps its name's end
            ("category_lines", "p"),
            ("category_lines_before_007", "r"),
            ("invoice_line", "p"),
            ("invoice_line_before_007", "r"),
            ("invoice_line_category", "v"),
        ]
        new_day = dt.date(2026, 10, 7)
        with store.unit_of_work() as uow:
            assert uow.invoices_with_status(dt.date(2026, 10, 5), InvoiceStatus.NOT_FOUND) == ("600000002",)
            assert uow.refresh_invoice_statuses(dt.date(2026, 10, 5)) == 2  # the view knows both
            file_id = uow.record_file(
                InboundFileRecord(
                    name="Letture20261007.txt",
                    day=new_day,
                    source=FileSource.UPLOAD,
                    sha256="ef" * 32,
                    declared_count=None,
                    actual_lines=2,
                    status=FileStatus.IMPORTED,
                )
            )
            line = InvoiceLine(2, "600000003", 5, "noci", Decimal("2"), ("frutta secca",))
            uow.insert_lines(file_id, new_day, blocks_of([line]))
        assert file_id == 3
        with store.connection() as connection:
            assert len(connection.execute(LINES_AND_LINKS).fetchall()) == 5
        with store.unit_of_work() as uow:
            assert uow.drop_file_lines(1, dt.date(2026, 10, 5))  # stored before 007: deleted
            assert uow.drop_file_lines(3, new_day)  # its own partitions: dropped
        with store.connection() as connection:
            assert connection.execute(LINES_AND_LINKS).fetchall() == before[2:]
            assert connection.execute(
                "SELECT to_regclass('invoice_line_20261007_3'), to_regclass('category_lines_20261007_3')"
            ).fetchone() == (None, None)
    finally:
        store.close()


def stored_relations(connection: psycopg.Connection) -> List[Tuple[str, str]]:
    """The lines' and links' tables, partitions and view of the connection's schema, and their kinds."""
    return [
        (row[0], row[1])
        for row in connection.execute(
            "SELECT relname, relkind::text FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
            " AND (relname LIKE 'invoice_line%' OR relname LIKE 'category_lines%') AND relkind IN ('r', 'p', 'v')"
            " ORDER BY 1"
        )
    ]


def test_migration_011_turns_the_links_of_both_kinds_of_day_into_arrays_and_every_query_reads_as_before(
    postgres_server, empty_schema
):
    """A database of the release before 011, by hand, holding a day stored before 007 and a day in
    partitions of its own: 011 (by hand too) writes each one's links as arrays in a partition of
    the same name's end, invoice_line_category reads as before (a view), and the retention removes
    a day of either kind."""
    migrations = sorted(MIGRATIONS.glob("*.sql"))
    for migration in migrations:
        if migration.stem < "007":
            apply_by_hand(postgres_server, empty_schema, migration)
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute('SET search_path TO "{}"'.format(empty_schema))
        connection.execute("INSERT INTO category (name) VALUES ('frutta secca'), ('pane'), ('noci')")
        days = ((5, "2026-10-05"), (6, "2026-10-06"))
        file = (
            "INSERT INTO inbound_file (id, name, day, source, sha256, actual_lines, status)"
            " VALUES (%s, %s, %s, 'ftp', %s, 4, 'imported')"
        )
        lines = (
            "INSERT INTO invoice_line (file_id, line_number, day, invoice_number, quantity, description, value,"
            " invoice_status) SELECT %s, n, %s, '60000000' || n, n, 'x', n, 'valid' FROM generate_series(2, 4) n"
        )
        links = (
            "INSERT INTO invoice_line_category SELECT c.id, l.file_id, l.line_number FROM invoice_line l"
            " JOIN category c ON c.name <> 'noci' OR l.line_number = 3"  # every line two categories, line 3 three
            " WHERE l.file_id = %s"
        )
        connection.execute(file, (5, "Letture20261005.txt", days[0][1], "5" * 64))
        connection.execute(lines, days[0])  # the first day stored before 007
        connection.execute(links, days[0][:1])
        for migration in migrations:
            if "007" <= migration.stem < "011":
                apply_by_hand(postgres_server, empty_schema, migration)
        # The second day as the release before 011 imported it: partitions of its own, attached.
        connection.execute(file, (6, "Letture20261006.txt", days[1][1], "6" * 64))
        suffix = "_20261006_6"
        connection.execute(
            "CREATE TABLE invoice_line{0} (LIKE invoice_line INCLUDING DEFAULTS INCLUDING CONSTRAINTS);"
            " CREATE TABLE invoice_line_category{0} (LIKE invoice_line_category INCLUDING DEFAULTS"
            " INCLUDING CONSTRAINTS);"
            " ALTER TABLE invoice_line ATTACH PARTITION invoice_line{0} FOR VALUES FROM (6) TO (7);"
            " ALTER TABLE invoice_line_category ATTACH PARTITION invoice_line_category{0}"
            " FOR VALUES FROM (6) TO (7)".format(suffix)
        )
        connection.execute(lines, days[1])
        connection.execute(links, days[1][:1])
        before = connection.execute(LINES_AND_LINKS).fetchall()
        by_category = connection.execute(
            "SELECT category_id, file_id, array_agg(line_number ORDER BY line_number) FROM invoice_line_category"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        assert len(before) == 6 and len(by_category) == 6
        apply_by_hand(postgres_server, empty_schema, MIGRATIONS / "011_category_line_arrays.sql")
        assert connection.execute(LINES_AND_LINKS).fetchall() == before
        assert connection.execute("SELECT * FROM category_lines ORDER BY 1, 2").fetchall() == by_category
        assert stored_relations(connection) == [
            ("category_lines", "p"),
            ("category_lines" + suffix, "r"),
            ("category_lines_before_007", "r"),
            ("invoice_line", "p"),
            ("invoice_line" + suffix, "r"),
            ("invoice_line_before_007", "r"),
            ("invoice_line_category", "v"),
        ]
    store = PsycopgStore(postgres_server, schema=empty_schema)
    try:
        assert store.migrate() == []
        with store.unit_of_work() as uow:
            assert uow.drop_file_lines(5, dt.date(2026, 10, 5))  # stored before 007: its rows deleted
            assert uow.drop_file_lines(6, dt.date(2026, 10, 6))  # its own partitions: dropped
        with store.connection() as connection:
            assert connection.execute(LINES_AND_LINKS).fetchall() == []
            assert stored_relations(connection) == [
                ("category_lines", "p"),
                ("category_lines_before_007", "r"),
                ("invoice_line", "p"),
                ("invoice_line_before_007", "r"),
                ("invoice_line_category", "v"),
            ]
    finally:
        store.close()


def test_migrations_007_and_011_on_a_new_database_leave_only_the_partitioned_tables_and_the_links_view(real_store):
    with real_store.connection() as connection:
        assert stored_relations(connection) == [
            ("category_lines", "p"),
            ("invoice_line", "p"),
            ("invoice_line_category", "v"),
        ]


def test_migration_011_applied_by_a_dba_leaves_the_links_to_the_role_that_owns_the_service_schema(
    postgres_server, empty_schema
):
    """The service's user made its schema (it needs CREATE on the database, docs/dba.md) and owns
    its tables; the DBA applies 011 by hand as themselves (psql's usual PGUSER). The service must
    still be able to import (create and attach a partition of the links) and the retention to drop a
    day's partitions: category_lines and its partitions must belong to the owner of the table they
    replace, not to whoever ran the file."""
    owner = "svc_" + empty_schema
    day = dt.date(2026, 10, 6)
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute('CREATE ROLE "{}"'.format(owner))
        try:
            connection.execute('CREATE SCHEMA "{}" AUTHORIZATION "{}"'.format(empty_schema, owner))
            with psycopg.connect(postgres_server) as service:  # the release before 011, as the service's user
                service.execute('SET ROLE "{}"'.format(owner))
                service.execute('SET search_path TO "{}"'.format(empty_schema))
                for migration in sorted(MIGRATIONS.glob("*.sql")):
                    if migration.stem < "011":
                        service.execute(migration.read_bytes())
                service.execute(
                    "INSERT INTO inbound_file (id, name, day, source, sha256, actual_lines, status)"
                    " VALUES (6, 'Letture20261006.txt', %s, 'ftp', %s, 2, 'imported')",
                    (day, "6" * 64),
                )
                service.execute(  # its partitions, as the release before 011 made them
                    "CREATE TABLE invoice_line_20261006_6 (LIKE invoice_line INCLUDING DEFAULTS INCLUDING CONSTRAINTS);"
                    " CREATE TABLE invoice_line_category_20261006_6 (LIKE invoice_line_category INCLUDING DEFAULTS"
                    " INCLUDING CONSTRAINTS);"
                    " ALTER TABLE invoice_line ATTACH PARTITION invoice_line_20261006_6 FOR VALUES FROM (6) TO (7);"
                    " ALTER TABLE invoice_line_category ATTACH PARTITION invoice_line_category_20261006_6"
                    " FOR VALUES FROM (6) TO (7)"
                )
                service.commit()
            apply_by_hand(postgres_server, empty_schema, MIGRATIONS / "011_category_line_arrays.sql")  # the DBA
            with psycopg.connect(postgres_server) as service:
                service.execute('SET ROLE "{}"'.format(owner))
                service.execute('SET search_path TO "{}"'.format(empty_schema))
                problems = []
                for what, step in (
                    ("an import", lambda: (create_partitions(service, day, 7), attach_partitions(service, day, 7))),
                    ("the retention", lambda: drop_file_rows(service, day, 6)),
                ):
                    try:
                        with service.transaction():
                            step()
                    except psycopg.errors.InsufficientPrivilege as error:
                        problems.append("{}: {}".format(what, error))
        finally:
            connection.execute('DROP SCHEMA IF EXISTS "{}" CASCADE'.format(empty_schema))
            connection.execute('DROP OWNED BY "{}"'.format(owner))
            connection.execute('DROP ROLE "{}"'.format(owner))
    assert problems == []
