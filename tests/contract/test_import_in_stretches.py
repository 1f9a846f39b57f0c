"""The import looks its invoices up a stretch of lines at a time. These
hold, at stretches of a few lines, what one lookup before the COPY gave: each line's status as
the session's recomputation would give it, the summary's lists and counts as the table says, a
file rejected late leaving nothing, a failure in the middle of a COPY leaving the store usable."""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import os
import signal
import threading
import tracemalloc
from collections import Counter
from decimal import Decimal

import psycopg
import pytest

from tests.conftest import at, psycopg_store
from tests.contract.test_store_contract import DAY, PostgresInspector, line, record
from tests.fakes import FakeArchive, FakeClock, FakeExportFiles, FakeInbound, FakeMailer, FakeOutbound, FakeRemoteLog
from warehouse_core.adapters.postgres import files_and_lines
from warehouse_core.bootstrap import bootstrap
from warehouse_core.model import InvoiceLine
from warehouse_core.parsing import UTF8, ParseTally, blocks_of, parse_blocks
from warehouse_core.usecases import importing
from warehouse_runner.signals import Interrupted, interruptible

NEXT_DAY = DAY + dt.timedelta(days=1)
# Plain and parsed-one-by-one lines of the same invoices, invoices with odd characters (COPY
# escapes, blanks to trim, line separators that are not "\n"), one held by another day.
ODD_FILE = "\n".join(
    [
        "600000001|1|frutta|1.50",
        " 600000002 |1|frutta|1.50",
        "600000004|1|fr\\utta|1.50",
        "6000\\0001|1|frutta|1.50",
        "6000\t0001|1|frutta|1.50",
        "6000\r0001|1|frutta|1.50",
        "600000002|1|frutta|1.50",
        "600000099|1|a\tb|1.50",
        "500000001|1|frutta|1.50",
        "\u00a0600000001\u00a0|1|frutta|1.50",
        "600000005|1|frutta|1.50",
        "6000\\0001|2|x|1",
        "600000002|1|frutta\\|1.50",
        "6000\u20280001|1|frutta|1.50",
        "6000\u00850001|1|frutta|1.50",
        "600000099|1|frutta|1.50",
    ]
).encode("utf-8")


def alternating(count, fail_at=None):
    for number in range(1, count + 1):
        if number == fail_at:
            raise OSError("the archive could not be read")
        yield line(number, "600000099" if number % 2 else "600000001")


@pytest.mark.parametrize("stretch", [1, 2, 3, 5, 1000])
def test_each_stretch_gives_the_statuses_the_session_would_recompute(real_store, monkeypatch, stretch):
    monkeypatch.setattr(files_and_lines, "LOOKUP_LINES", stretch)
    with real_store.connection() as connection:
        connection.execute(
            "INSERT INTO exported_invoice (invoice_number, day, delivered) VALUES ('600000002', %s, true)",
            (DAY - dt.timedelta(days=6),),
        )
    tally = ParseTally()
    with real_store.unit_of_work() as uow:
        blocks = parse_blocks(io.BytesIO(ODD_FILE), UTF8, tally, block_size=30)
        stored = uow.insert_lines(uow.record_file(record()), DAY, blocks)
    before = PostgresInspector(real_store).lines()
    counts = Counter(each["status"] for each in before)
    assert (tally.problem_count, len(before), counts["already_exported"]) == (0, 15, 3)
    assert (stored.stored, stored.not_found_lines, stored.already_exported_lines) == (
        len(before),
        counts["not_found"],
        counts["already_exported"],
    )
    assert stored.not_found == tuple(
        sorted({each["invoice_number"] for each in before if each["status"] == "not_found"})
    )
    assert stored.already_exported == ("600000002",)
    with real_store.unit_of_work() as uow:
        uow.refresh_invoice_statuses(DAY)
    after = PostgresInspector(real_store).lines()
    assert [(each["line_number"], each["status"]) for each in after] == [
        (each["line_number"], each["status"]) for each in before
    ]


@pytest.mark.parametrize(
    "text",
    [b"", b"500000001|1|a|1\n500000002|1|a|1", b"600000001|1|a|1\n600000099|1|a|1\n600000002|1|a|1\n500000001|1|a|1\n"],
    ids=["empty", "only ignored lines", "last stretch empty"],
)
def test_files_without_a_last_stretch_store_what_they_hold(real_store, monkeypatch, text):
    monkeypatch.setattr(files_and_lines, "LOOKUP_LINES", 3)
    for day in (DAY, NEXT_DAY):  # and the next import goes on
        with real_store.unit_of_work() as uow:
            file_id = uow.record_file(record(name="Letture{:%Y%m%d}083015123_9.txt".format(day), day=day))
            stored = uow.insert_lines(file_id, day, parse_blocks(io.BytesIO(text), UTF8, ParseTally(), block_size=16))
        assert stored.stored == len(PostgresInspector(real_store).lines()) // (1 if day == DAY else 2)
        assert stored.not_found == (("600000099",) if text.count(b"\n6") else ())


def test_a_read_failure_while_the_next_stretch_is_parsed_inside_a_copy_leaves_the_store_usable(real_store, monkeypatch):
    monkeypatch.setattr(files_and_lines, "LOOKUP_LINES", 3)
    for _ in range(3):  # each time on a pooled connection a failed COPY went through
        with pytest.raises(OSError, match="could not be read"):
            with real_store.unit_of_work() as uow:
                uow.insert_lines(uow.record_file(record()), DAY, blocks_of(alternating(20, fail_at=5), 1))
    with real_store.unit_of_work() as uow:
        stored = uow.insert_lines(uow.record_file(record()), DAY, blocks_of(alternating(9), 1))
    assert (stored.stored, stored.not_found_lines, len(PostgresInspector(real_store).lines())) == (9, 5, 9)


def test_a_database_error_in_a_later_copy_leaves_the_store_usable(real_store, monkeypatch):
    monkeypatch.setattr(files_and_lines, "LOOKUP_LINES", 3)

    def too_big_at_5():  # bigint overflows in the second stretch's COPY
        for number in range(1, 10):
            yield InvoiceLine(number, "600000001", 10**30 if number == 5 else 1, "x", Decimal("1"), ("frutta",))

    for _ in range(3):
        with pytest.raises(psycopg.errors.NumericValueOutOfRange):
            with real_store.unit_of_work() as uow:
                uow.insert_lines(uow.record_file(record()), DAY, blocks_of(too_big_at_5(), 1))
    with real_store.unit_of_work() as uow:
        uow.insert_lines(uow.record_file(record()), DAY, blocks_of(alternating(9), 1))
    assert len(PostgresInspector(real_store).lines()) == 9


def test_several_copies_into_a_files_table_still_freeze_every_page(real_store, monkeypatch):
    monkeypatch.setattr(files_and_lines, "LOOKUP_LINES", 7_000)
    with real_store.unit_of_work() as uow:
        uow.insert_lines(uow.record_file(record()), DAY, blocks_of(alternating(30_000), 1_000))
    with real_store.connection() as connection:
        try:
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_visibility SCHEMA public")
        except psycopg.Error:  # an untrusted extension: a test server whose user may not create it
            pytest.skip("pg_visibility cannot be created here")
        pages = connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE all_visible AND all_frozen)"
            " FROM public.pg_visibility_map('invoice_line_20261126_1'::regclass)"
        ).fetchone()
    assert pages is not None and pages[0] > 100 and pages[0] == pages[1]


def test_a_file_rejected_for_a_late_stretch_leaves_nothing_and_says_which_line(real_store, make_settings, monkeypatch):
    monkeypatch.setattr(files_and_lines, "LOOKUP_LINES", 3)
    monkeypatch.setattr(importing, "parse_blocks", functools.partial(parse_blocks, block_size=30))
    inbound, clock = FakeInbound(), FakeClock(at("2026-11-26T10:00"))
    core = bootstrap(
        make_settings(remote_log_path="importer-{date}.log"),
        store=real_store,
        inbound=inbound,
        archive=FakeArchive(),
        mailer=FakeMailer(),
        clock=clock,
        outbound=FakeOutbound(),
        remote_log=FakeRemoteLog(),
        exports=FakeExportFiles(),
    )
    good = ["600000001|1|frutta|1.50", "600000099|1|frutta|1.50", "600000002|1|pane|2"] * 10
    bad = good[:26] + ["600000002|x|pane|2"] + good[27:]
    inbound.files["Letture20261126083015123_29.txt"] = "\n".join(bad).encode()
    assert core.ingest_daily_file(clock.now()).rejected == ["Letture20261126083015123_29.txt"]
    with real_store.connection() as connection:
        tables = connection.execute(
            "SELECT relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND relname ~ '^(invoice_line|category_lines)_2'"
        ).fetchall()
        mails = connection.execute("SELECT event, body_text FROM mail_outbox ORDER BY id").fetchall()
    assert PostgresInspector(real_store).lines() == [] and tables == []
    assert [event for event, _ in mails] == ["import-failed"] and "line 27:" in mails[0][1]
    clock.set(at("2026-11-26T11:00"))
    inbound.files["Letture20261126110000000_29.txt"] = "\n".join(good).encode()
    assert core.ingest_daily_file(clock.now()).imported == ["Letture20261126110000000_29.txt"]
    lines = PostgresInspector(real_store).lines()
    assert len(lines) == 30 and sum(each["status"] == "not_found" for each in lines) == 10


def test_the_lookups_are_planned_for_their_numbers_each_time_never_as_a_prepared_generic_plan(real_store, monkeypatch):
    """psycopg prepares a statement run five times on a connection, and PostgreSQL then plans it
    once for any numbers: a nested loop probing the customer's view per number, whatever the view
    costs to probe. Each stretch's lookup is planned for its own numbers (never prepared)."""
    monkeypatch.setattr(files_and_lines, "LOOKUP_LINES", 1)
    look_up = files_and_lines.PsycopgFilesAndLines._unusual_statuses
    prepared = []

    def looked_up_then_counted(self, day, invoices):
        found = look_up(self, day, invoices)
        prepared.append(
            self.connection.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%string_to_array%'",
                prepare=False,
            ).fetchone()[0]
        )
        return found

    monkeypatch.setattr(files_and_lines.PsycopgFilesAndLines, "_unusual_statuses", looked_up_then_counted)
    lines = [line(number, "6000000{:02d}".format(number)) for number in range(1, 13)]
    with real_store.unit_of_work() as uow:
        uow.insert_lines(uow.record_file(record()), DAY, blocks_of(lines, 1))
    assert prepared == [0] * 12


def test_a_lookup_failing_on_the_server_leaves_nothing_and_the_store_usable(real_store, monkeypatch):
    """The server's error in a later stretch's lookup (here a division by zero) reaches the import,
    nothing is stored, and the pooled connection serves the next import."""
    monkeypatch.setattr(files_and_lines, "LOOKUP_LINES", 3)
    look_up = files_and_lines.PsycopgFilesAndLines._unusual_statuses
    calls = []

    def fails_the_second_time(self, day, invoices):
        calls.append(invoices)
        if len(calls) == 2:
            self.connection.execute("SELECT pg_sleep(0.1), 1 / 0")
        return look_up(self, day, invoices)

    monkeypatch.setattr(files_and_lines.PsycopgFilesAndLines, "_unusual_statuses", fails_the_second_time)
    lines = [line(number, "6000000{:02d}".format(number)) for number in range(1, 10)]
    with pytest.raises(psycopg.errors.DivisionByZero):
        with real_store.unit_of_work() as uow:
            uow.insert_lines(uow.record_file(record()), DAY, blocks_of(lines, 1))
    monkeypatch.setattr(files_and_lines.PsycopgFilesAndLines, "_unusual_statuses", look_up)
    assert PostgresInspector(real_store).lines() == []
    with real_store.unit_of_work() as uow:
        stored = uow.insert_lines(uow.record_file(record()), DAY, blocks_of(alternating(9), 1))
    assert (stored.stored, stored.not_found_lines, len(PostgresInspector(real_store).lines())) == (9, 5, 9)


def test_the_links_spill_failing_after_a_slow_lookup_leaves_nothing_and_the_store_usable(real_store, monkeypatch):
    """The links' spill failing (here a full disk) stops the import with no statement left running
    on its connection (the slow lookup before it had finished), and nothing is stored."""
    monkeypatch.setattr(files_and_lines, "LOOKUP_LINES", 3)
    monkeypatch.setattr(files_and_lines, "CHUNK_LINES", 4)
    look_up = files_and_lines.PsycopgFilesAndLines._unusual_statuses
    finished = []

    def slow(self, day, invoices):
        self.connection.execute("SELECT pg_sleep(0.2)")
        found = look_up(self, day, invoices)
        finished.append(invoices)
        return found

    def disk_full(self, taken):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_and_lines.PsycopgFilesAndLines, "_unusual_statuses", slow)
    monkeypatch.setattr(files_and_lines.LinkSpill, "add", disk_full)
    with pytest.raises(OSError, match="No space left"):
        with real_store.unit_of_work() as uow:
            uow.insert_lines(uow.record_file(record()), DAY, blocks_of(alternating(9), 1))
    assert len(finished) == 2  # the second stretch's lookup had finished
    monkeypatch.undo()
    assert PostgresInspector(real_store).lines() == []
    with real_store.unit_of_work() as uow:
        stored = uow.insert_lines(uow.record_file(record()), DAY, blocks_of(alternating(9), 1))
    assert (stored.stored, stored.not_found_lines, len(PostgresInspector(real_store).lines())) == (9, 5, 9)


@pytest.fixture
def store_with_a_big_view(postgres_server, db_schema):
    """A store whose customer's view lists invoices 600000001 to 600060000."""
    view = db_schema + "_view"
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute('CREATE SCHEMA "{}"'.format(view))
        connection.execute(
            "CREATE TABLE \"{}\".invoices AS SELECT 6e8::bigint + i || '' AS invoice_number,"
            " date '2026-11-20' AS invoice_date, 'C' AS customer_code, 'Rossi' AS customer_name,"
            " 'Via Roma 1' AS delivery_address FROM generate_series(1, 60000) AS i".format(view)
        )
        connection.execute('ALTER TABLE "{}".invoices ADD PRIMARY KEY (invoice_number)'.format(view))
        connection.execute('ANALYZE "{}".invoices'.format(view))
    try:
        with psycopg_store(postgres_server, db_schema, invoice_view="{}.invoices".format(view)) as store:
            yield store
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as connection:
            connection.execute('DROP SCHEMA IF EXISTS "{}" CASCADE'.format(view))


def test_a_file_of_distinct_invoices_keeps_a_bounded_set_of_those_looked_up(store_with_a_big_view, monkeypatch):
    """The import remembers the invoices it looked up so that a later stretch does not ask again,
    but only up to LOOKED_UP_KEPT of them: a 1M-line file whose every line has its own invoice
    peaked at 160 MB against SPEC §11's 150. Traced here, 60,000 distinct invoices, all valid:
    7.5 MB of Python memory at the peak remembering them all, 3.1 MB remembering 2,000."""
    monkeypatch.setattr(files_and_lines, "LOOKUP_LINES", 500)
    monkeypatch.setattr(files_and_lines, "LOOKED_UP_KEPT", 2_000)
    lines = (line(number, str(600_000_000 + number)) for number in range(1, 60_001))
    with store_with_a_big_view.unit_of_work() as uow:
        file_id = uow.record_file(record())
        tracemalloc.start()
        try:
            stored = uow.insert_lines(file_id, DAY, blocks_of(lines, 100))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert (stored.stored, stored.not_found_lines) == (60_000, 0)
    assert peak < 5_000_000


def test_invoices_forgotten_past_the_bound_are_looked_up_again_with_the_same_statuses(real_store, monkeypatch):
    monkeypatch.setattr(files_and_lines, "LOOKUP_LINES", 2)
    monkeypatch.setattr(files_and_lines, "LOOKED_UP_KEPT", 3)
    with real_store.connection() as connection:
        connection.execute(
            "INSERT INTO exported_invoice (invoice_number, day, delivered) VALUES ('600000002', %s, true)",
            (DAY - dt.timedelta(days=6),),
        )
    invoices = ["600000001", "600000099", "600000002", "600000005", "600000006", "600000004"] * 3
    with real_store.unit_of_work() as uow:
        stored = uow.insert_lines(
            uow.record_file(record()), DAY, blocks_of([line(n, i) for n, i in enumerate(invoices, 1)], 1)
        )
    with real_store.connection() as connection:
        statuses = dict(
            connection.execute(
                "SELECT invoice_number, array_agg(DISTINCT invoice_status ORDER BY invoice_status) FROM invoice_line"
                " WHERE day = %s GROUP BY invoice_number",
                (DAY,),
            ).fetchall()
        )
    assert stored.not_found == ("600000004", "600000099")
    assert stored.already_exported == ("600000002",)
    assert (stored.not_found_lines, stored.already_exported_lines) == (6, 3)
    assert statuses == {
        "600000001": ["valid"],
        "600000002": ["already_exported"],
        "600000004": ["not_found"],
        "600000005": ["valid"],
        "600000006": ["valid"],
        "600000099": ["not_found"],
    }


def test_ctrl_c_stops_an_import_whose_lookup_waits_on_a_locked_view(real_store, postgres_server, monkeypatch):
    """Review 6a: warehouse-runner import and poll run the import under interruptible(); a stop
    signal while a lookup waits on the customer's view (their ALTER or VACUUM FULL holding a lock)
    stops the import then, not when the lock goes, and leaves nothing. (A lookup on a worker
    thread, tried for speed, broke this: the executor waited for the lookup.)"""
    monkeypatch.setattr(files_and_lines, "LOOKUP_LINES", 3)
    released = threading.Event()
    blocker = psycopg.connect(postgres_server)
    blocker.execute("LOCK TABLE public.invoice_source IN ACCESS EXCLUSIVE MODE")

    def release():
        released.set()
        blocker.rollback()

    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    unlock = threading.Timer(5.0, release)
    unlock.start()
    stopped_while_locked = None
    try:
        with interruptible():
            with real_store.unit_of_work() as uow:
                uow.insert_lines(uow.record_file(record()), DAY, blocks_of(alternating(9), 1))
    except Interrupted:
        stopped_while_locked = not released.is_set()
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
        unlock.join()
        blocker.close()
    assert stopped_while_locked is True
    assert PostgresInspector(real_store).lines() == []


def test_a_lookup_reads_the_customers_view_once_whatever_the_ledger_holds(real_store):
    """Review 6b: with the ledger empty (the bench's history had no exports) the already-exported
    branch cost nothing; with 10 days of exports (2M rows) each stretch hashed the view twice, once
    per branch, and a 1M import took 1.1-1.4 s more of the server. The view is read once per
    lookup (and per session's recomputation): the invoices it lists, then both statuses from them."""
    from psycopg import sql

    with real_store.connection() as connection:
        connection.execute(
            "INSERT INTO exported_invoice (invoice_number, day, delivered)"
            " SELECT (700000000 + i)::text, %s::date - 1 - i %% 10, true FROM generate_series(1, 5000) AS i",
            (DAY,),
        )
        connection.execute("ANALYZE exported_invoice")
    with real_store.unit_of_work() as uow:
        uow.insert_lines(uow.record_file(record()), DAY, blocks_of(alternating(9), 1))
    statements = {
        "lookup": (
            "WITH invoices AS (SELECT unnest(string_to_array(%(numbers)s, E'\\n')) AS invoice_number),"
            " unusual AS ({unusual}) SELECT * FROM unusual",
            {"day": DAY, "numbers": "600000001\n600000099\n600000002"},
        ),
        "recomputation": (
            "WITH invoices AS (SELECT DISTINCT invoice_number FROM invoice_line WHERE day = %(day)s),"
            " unusual AS ({unusual}) SELECT * FROM unusual",
            {"day": DAY},
        ),
    }
    scans = {}
    with real_store.connection() as connection:
        for name, (statement, params) in statements.items():
            query = sql.SQL("EXPLAIN (FORMAT JSON) " + statement).format(
                unusual=files_and_lines.UNUSUAL_STATUSES.format(view=sql.Identifier("public", "invoice_view"))
            )
            plan = json.dumps(connection.execute(query, params).fetchone()[0])
            scans[name] = plan.count('"Relation Name": "invoice_source"')
    assert scans == {"lookup": 1, "recomputation": 1}


def test_past_the_bound_only_valid_invoices_are_asked_for_again(real_store, monkeypatch):
    """Review 7a: an unusual invoice stays known past the bound (its later lines take its status
    from what the import holds for the summary), so it is never asked for twice; a valid one
    forgotten is asked for again when it comes back."""
    monkeypatch.setattr(files_and_lines, "LOOKUP_LINES", 1)
    monkeypatch.setattr(files_and_lines, "LOOKED_UP_KEPT", 1)
    look_up = files_and_lines.PsycopgFilesAndLines._unusual_statuses
    asked = Counter()

    def counted(self, day, invoices):
        asked.update(invoice for invoice in invoices.split("\n") if invoice)
        return look_up(self, day, invoices)

    monkeypatch.setattr(files_and_lines.PsycopgFilesAndLines, "_unusual_statuses", counted)
    invoices = ["600000099", "600000001", "600000005", "600000099", "600000001", "600000099"]
    with real_store.unit_of_work() as uow:
        stored = uow.insert_lines(
            uow.record_file(record()), DAY, blocks_of([line(n, i) for n, i in enumerate(invoices, 1)], 1)
        )
    assert (stored.not_found, stored.not_found_lines) == (("600000099",), 3)
    assert asked["600000099"] == 1
    assert asked["600000001"] == 2
