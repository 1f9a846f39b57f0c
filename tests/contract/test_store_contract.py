"""The Store port: the same tests against the in-memory fake and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import inspect
import io
import threading
from decimal import Decimal
from typing import Any, Dict, List

import pytest

from tests.conftest import SAMPLE_VIEW, at
from tests.fakes import FakeClock, FakeStore, FakeUnitOfWork
from warehouse_core.adapters.postgres import PsycopgStore, PsycopgUnitOfWork, files_and_lines
from warehouse_core.errors import Conflict
from warehouse_core.export_format import export_line
from warehouse_core.model import (
    Attachment,
    FileSource,
    FileStatus,
    InboundFileRecord,
    InvoiceLine,
    Mail,
    MailEvent,
    Problem,
)
from warehouse_core.parsing import UTF8, ParseTally, blocks_of, parse_blocks
from warehouse_core.ports import (
    Events,
    ExportSource,
    FilesAndLines,
    History,
    Locks,
    Outbox,
    Sessions,
    Store,
    Transactions,
)

DAY = dt.date(2026, 11, 26)


class FakeInspector:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    def lines(self) -> List[Dict[str, Any]]:
        return [
            {
                "line_number": s.line.line_number,
                "invoice_number": s.line.invoice_number,
                "quantity": s.line.quantity,
                "value": s.line.value,
                "status": s.invoice_status.value,
                "categories": sorted(s.line.categories),
                "description": s.line.description,
            }
            for s in self.store.data.lines
        ]

    def categories(self) -> List[str]:
        return sorted(self.store.data.categories)


class PostgresInspector:
    def __init__(self, store: Any) -> None:
        self.store = store

    def lines(self) -> List[Dict[str, Any]]:
        with self.store.connection() as connection:
            rows = connection.execute(
                "SELECT l.line_number, l.invoice_number, l.value, l.invoice_status,"
                " coalesce(array_agg(c.name ORDER BY c.name) FILTER (WHERE c.name IS NOT NULL), '{}'), l.description,"
                " l.quantity"
                " FROM invoice_line l LEFT JOIN invoice_line_category lc"
                "  ON lc.file_id = l.file_id AND lc.line_number = l.line_number"
                " LEFT JOIN category c ON c.id = lc.category_id"
                " GROUP BY l.file_id, l.line_number ORDER BY l.file_id, l.line_number"
            ).fetchall()
        return [
            {
                "line_number": r[0],
                "invoice_number": r[1],
                "quantity": r[6],
                "value": r[2],
                "status": r[3],
                "categories": list(r[4]),
                "description": r[5],
            }
            for r in rows
        ]

    def categories(self) -> List[str]:
        with self.store.connection() as connection:
            return [r[0] for r in connection.execute("SELECT name FROM category ORDER BY name")]


@pytest.fixture(params=["fake", "postgres"])
def store_and_inspector(request):
    if request.param == "fake":
        store = FakeStore(invoice_view=SAMPLE_VIEW)
        store.clock = FakeClock(at("2026-11-26T10:00"))
        return store, FakeInspector(store)
    store = request.getfixturevalue("real_store")
    return store, PostgresInspector(store)


@pytest.fixture
def store(store_and_inspector):
    return store_and_inspector[0]


@pytest.fixture
def inspector(store_and_inspector):
    return store_and_inspector[1]


def record(name="Letture20261126083015123_9.txt", status=FileStatus.IMPORTED, sha="ab" * 32, day=DAY):
    return InboundFileRecord(
        name=name,
        day=day,
        source=FileSource.FTP,
        sha256=sha,
        declared_count=9,
        actual_lines=10,
        status=status,
        archive_path="2026-11-26/" + name,
    )


def line(number, invoice, categories=("frutta",), value="1.50"):
    return InvoiceLine(
        line_number=number,
        invoice_number=invoice,
        quantity=number,
        description=", ".join(categories),
        value=Decimal(value),
        categories=tuple(categories),
    )


def insert(uow, file_id, day, lines):
    return uow.insert_lines(file_id, day, blocks_of(lines))


def mail(event=MailEvent.IMPORT_SUMMARY, subject="subject"):
    return Mail(event=event, day=DAY, subject=subject, text="text", html="<p>html</p>")


ROLES_OF_THE_UNIT_OF_WORK = (FilesAndLines, Sessions, Outbox, Events, History)
ROLES_OF_THE_STORE = (Transactions, Locks, ExportSource, Store)


def _methods(protocol):
    return [name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")]


def _signature(function):
    """Parameter names, kinds and defaults: what a caller relies on (annotations are the type checker's)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize(
    "roles, adapters",
    [
        (ROLES_OF_THE_UNIT_OF_WORK, (FakeUnitOfWork, PsycopgUnitOfWork)),
        (ROLES_OF_THE_STORE, (FakeStore, PsycopgStore)),
    ],
    ids=["unit of work", "store"],
)
def test_the_fake_and_postgres_offer_every_method_of_each_role_as_the_port_declares_it(roles, adapters):
    for role in roles:
        for name in _methods(role):
            declared = _signature(getattr(role, name))
            for adapter in adapters:
                assert _signature(getattr(adapter, name)) == declared, "{}.{}".format(adapter.__name__, name)


def test_recorded_files_are_found_by_name_and_sha256(store):
    with store.unit_of_work() as uow:
        assert uow.find_file("x", "y") is None
        file_id = uow.record_file(record(status=FileStatus.REJECTED))
        uow.set_file_outcome(file_id, FileStatus.REJECTED, (Problem(2, "bad"),))
    with store.unit_of_work() as uow:
        found = uow.find_file("Letture20261126083015123_9.txt", "ab" * 32)
        assert found.status is FileStatus.REJECTED and found.reasons == (Problem(2, "bad"),)
        assert found.source is FileSource.FTP and found.declared_count == 9
        assert uow.find_file("Letture20261126083015123_9.txt", "cd" * 32) is None
        assert uow.day_has_data(DAY) is False


def test_one_imported_file_per_day(store):
    with store.unit_of_work() as uow:
        uow.record_file(record())
        assert uow.day_has_data(DAY)
        assert not uow.day_has_data(DAY + dt.timedelta(days=1))
    with pytest.raises(Conflict):
        with store.unit_of_work() as uow:
            uow.record_file(record(name="Letture20261126150000000_9.txt", sha="cd" * 32))
    with store.unit_of_work() as uow:
        uow.record_file(record(name="Letture20261126150000000_9.txt", sha="cd" * 32, status=FileStatus.EXTRA))


def test_lines_are_stored_with_normalised_categories_once_and_invoice_statuses(store, inspector):
    with store.unit_of_work() as uow:
        file_id = uow.record_file(record())
        stored = uow.insert_lines(
            file_id,
            DAY,
            blocks_of(
                [
                    line(1, "600000001", ("frutta", "verdura")),
                    line(2, "600000004", ("frutta secca", "verdura"), "-3.20"),
                    line(3, "600000099", ()),
                    line(4, "600000004", ("frutta",), "12345678901234567890.123456789"),
                ]
            ),
        )
    assert stored.stored == 4
    assert stored.not_found == ("600000004", "600000099")
    assert stored.already_exported == ()
    assert inspector.categories() == ["frutta", "frutta secca", "verdura"]
    lines = inspector.lines()
    assert [(line["line_number"], line["status"], line["categories"]) for line in lines] == [
        (1, "valid", ["frutta", "verdura"]),
        (2, "not_found", ["frutta secca", "verdura"]),
        (3, "not_found", []),
        (4, "not_found", ["frutta"]),
    ]
    assert lines[1]["value"] == Decimal("-3.20")
    assert lines[3]["value"] == Decimal("12345678901234567890.123456789")


def test_any_text_survives_the_bulk_load(store, inspector):
    awkward = 'tab\there, back\\slash, "quoted", {braces}, \\N, caffè ☕'
    odd = InvoiceLine(
        line_number=1,
        invoice_number="600000001",
        quantity=0,
        description=awkward,
        value=Decimal("-0.000001"),
        categories=("tab\there", "back\\slash", '"quoted"', "{braces}", "\\n", "caffè ☕"),
    )
    with store.unit_of_work() as uow:
        insert(uow, uow.record_file(record()), DAY, [odd])
    [stored] = inspector.lines()
    assert stored["description"] == awkward and stored["value"] == Decimal("-0.000001")
    assert stored["categories"] == sorted(odd.categories)


def test_a_parsed_file_is_stored_as_its_lines_read_one_by_one(store, inspector):
    # Plain lines reach the store as the file spells them; the others as parsed. Either way the
    # database holds what the InvoiceLine says, the value's scale included.
    text = (
        "600000001|12|Frutta, Verdura|120.50\n"
        "600000002|007|Pane|+3\n"
        "600000004|1|tab\there, back\\slash|0.0000001\r\n"
        "600000001|0|Caff\u00e8, caff\u00e8 |-3.20"
    )
    blocks = list(parse_blocks(io.BytesIO(text.encode("utf-8")), UTF8, ParseTally(), block_size=64))
    assert sum(len(block.plain) for block in blocks) == 2 and sum(len(block.others) for block in blocks) == 2
    expected = [line for block in blocks for line in block.lines()]
    with store.unit_of_work() as uow:
        uow.insert_lines(uow.record_file(record()), DAY, iter(blocks))
    assert [
        (line["line_number"], line["quantity"], line["description"], str(line["value"]), line["categories"])
        for line in inspector.lines()
    ] == [
        (line.line_number, line.quantity, line.description, str(line.value), sorted(line.categories))
        for line in expected
    ]
    assert str(expected[0].value) == "120.50" and expected[1].quantity == 7


MANY_LINES = 60_000  # more than two of the chunks whose category links PostgreSQL's store spills to disk


def many_lines(count=MANY_LINES, fail_at=None):
    """Lines 1..count, three categories in turn, every tenth invoice not in the view, one awkward
    description far into the file; ``fail_at`` raises there, as a broken file read would."""
    names = ("frutta", "verdura", "pane")
    for number in range(1, count + 1):
        if number == fail_at:
            raise OSError("the archive could not be read")
        if number == 45_001:
            yield InvoiceLine(number, "600000001", 1, "tab\there \\ back", Decimal("1"), ("tab\there \\ back",))
            continue
        yield line(number, "600000099" if number % 10 == 0 else "600000001", names[: 1 + number % 3])


def test_many_lines_go_in_whole_with_their_links_and_statuses(store, inspector):
    with store.unit_of_work() as uow:
        stored = uow.insert_lines(uow.record_file(record()), DAY, blocks_of(many_lines()))
    assert (
        stored.stored == MANY_LINES
        and stored.not_found == ("600000099",)
        and stored.not_found_lines == MANY_LINES // 10
    )
    lines = inspector.lines()
    assert [line["line_number"] for line in lines] == list(range(1, MANY_LINES + 1))
    assert sum(1 for line in lines if line["status"] == "not_found") == MANY_LINES // 10
    assert sum(len(line["categories"]) for line in lines) == sum(1 + n % 3 for n in range(1, MANY_LINES + 1)) - 1
    assert lines[45_000]["description"] == "tab\there \\ back" and lines[45_000]["categories"] == ["tab\there \\ back"]
    assert inspector.categories() == ["frutta", "pane", "tab\there \\ back", "verdura"]


def test_a_failure_while_the_lines_stream_ends_the_import_and_leaves_nothing(store, inspector):
    with pytest.raises(OSError, match="could not be read"):
        with store.unit_of_work() as uow:
            uow.insert_lines(uow.record_file(record()), DAY, blocks_of(many_lines(fail_at=40_000)))
    assert inspector.lines() == []
    with store.unit_of_work() as uow:  # the store goes on working
        insert(uow, uow.record_file(record()), DAY, [line(1, "600000001")])
    assert len(inspector.lines()) == 1


def test_a_database_error_far_into_the_lines_reaches_the_caller(real_store):
    import psycopg

    def twice_line_5():
        yield from many_lines(count=30_000)
        yield line(5, "600000001")

    with pytest.raises(psycopg.errors.UniqueViolation):
        with real_store.unit_of_work() as uow:
            uow.insert_lines(uow.record_file(record()), DAY, blocks_of(twice_line_5()))
    assert PostgresInspector(real_store).lines() == []


def test_categories_already_known_are_reused(store, inspector):
    with store.unit_of_work() as uow:
        first = uow.record_file(record(day=DAY - dt.timedelta(days=1)))
        insert(uow, first, DAY - dt.timedelta(days=1), [line(1, "600000001", ("pane",))])
    with store.unit_of_work() as uow:
        second = uow.record_file(record(sha="cd" * 32))
        insert(uow, second, DAY, [line(1, "600000002", ("pane", "carne"))])
    assert inspector.categories() == ["carne", "pane"]


def test_savepoint_undoes_only_its_own_writes(store, inspector):
    with store.unit_of_work() as uow:
        file_id = uow.record_file(record())
        with pytest.raises(ValueError):
            with uow.savepoint():
                insert(uow, file_id, DAY, [line(1, "600000001")])
                raise ValueError("invalid file")
        uow.set_file_outcome(file_id, FileStatus.REJECTED, (Problem(1, "bad"),))
    assert inspector.lines() == [] and inspector.categories() == []
    with store.unit_of_work() as uow:
        assert uow.find_file(record().name, record().sha256).status is FileStatus.REJECTED


def test_a_failed_unit_of_work_leaves_nothing(store, inspector):
    with pytest.raises(RuntimeError):
        with store.unit_of_work() as uow:
            file_id = uow.record_file(record())
            insert(uow, file_id, DAY, [line(1, "600000001")])
            uow.enqueue_mail(mail())
            raise RuntimeError("crash")
    with store.unit_of_work() as uow:
        assert uow.find_file(record().name, record().sha256) is None
        assert uow.claim_due_mail(at("2026-11-26T12:00")) is None
    assert inspector.lines() == []


def test_outbox_once_key_claim_and_retry(store):
    now = at("2026-11-26T19:00")
    with store.unit_of_work() as uow:
        assert uow.enqueue_mail(mail(MailEvent.NO_FILE, "first"), once_key="no-file:2026-11-26")
        assert not uow.enqueue_mail(mail(MailEvent.NO_FILE, "second"), once_key="no-file:2026-11-26")
        assert uow.enqueue_mail(mail(MailEvent.IMPORT_SUMMARY, "summary"))
    with store.unit_of_work() as uow:
        first = uow.claim_due_mail(now)
        assert first.subject == "first" and first.event is MailEvent.NO_FILE and first.attempts == 0
        uow.mark_mail_failed(first.id, "down", now + dt.timedelta(minutes=1))
    with store.unit_of_work() as uow:
        second = uow.claim_due_mail(now)
        assert second.subject == "summary"
        uow.mark_mail_sent(second.id, now)
    with store.unit_of_work() as uow:
        assert uow.claim_due_mail(now) is None
        again = uow.claim_due_mail(now + dt.timedelta(minutes=1))
        assert again.subject == "first" and again.attempts == 1 and again.text == "text" and again.html == "<p>html</p>"


def test_a_mails_attachment_is_kept_in_the_outbox_until_it_is_sent(store):
    """SPEC §6: invoices.csv waits in the outbox with its mail, across a restart (the mail is read
    back from the table by the next sender), and a mail without one comes back without one."""
    csv_text = "invoice,list\r\n" + "".join("6{:08d},not_found\r\n".format(i) for i in range(300))
    big = Mail(
        event=MailEvent.IMPORT_SUMMARY,
        day=DAY,
        subject="big",
        text="text",
        html="<p>html</p>",
        attachments=(Attachment(name="invoices.csv", media_type="text/csv", content=csv_text),),
    )
    now = at("2026-11-26T12:00")
    with store.unit_of_work() as uow:
        assert uow.enqueue_mail(big)
        assert uow.enqueue_mail(mail(subject="small"))
    with store.unit_of_work() as uow:
        first = uow.claim_due_mail(now)
        assert first.attachments == big.attachments
        uow.mark_mail_sent(first.id, now)
        second = uow.claim_due_mail(now)
        assert second.subject == "small" and second.attachments == ()


def test_a_claimed_mail_is_not_given_to_a_second_sender(store):
    now = at("2026-11-26T12:00")
    with store.unit_of_work() as uow:
        uow.enqueue_mail(mail(subject="only"))
    # Each sender is a unit of work of its own, opened while the first holds its claim (on
    # PostgreSQL each is a connection of its own; in the fake, a nested transaction).
    with store.unit_of_work() as first:
        assert first.claim_due_mail(now).subject == "only"
        with store.unit_of_work() as second:
            assert second.claim_due_mail(now) is None
        with store.unit_of_work() as third:
            assert third.claim_due_mail(now) is None  # the second sender's end released nothing
    # The first ended without marking the mail: its claim ended with it.
    with store.unit_of_work() as later:
        assert later.claim_due_mail(now).subject == "only"


def test_poll_lock_is_exclusive(store):
    with store.exclusive_poll() as first:
        assert first is True
        result = []
        thread = threading.Thread(target=lambda: result.append(_try_lock(store)))
        thread.start()
        thread.join()
        assert result == [False]
    with store.exclusive_poll() as again:
        assert again is True


def test_how_long_the_poll_lock_has_been_held_is_known_to_the_other_processes(store):
    """The no-file alert defers to a poll that has just taken the lock (it may be importing today's
    file) and not to one that holds it for long (SPEC §4): every process can tell which."""
    assert store.poll_lock_held_for() is None
    with store.exclusive_poll() as first:
        assert first is True
        result = []
        thread = threading.Thread(target=lambda: result.append(store.poll_lock_held_for()))
        thread.start()
        thread.join()
        [held] = result
        assert held is not None and dt.timedelta(0) <= held < dt.timedelta(minutes=1)
    assert store.poll_lock_held_for() is None


def _try_lock(store):
    with store.exclusive_poll() as acquired:
        return acquired


def test_the_view_columns_the_import_and_export_need_are_checked(store):
    assert store.missing_view_columns(COLUMNS) == []
    assert store.missing_view_columns(("invoice_number", "nope", "customer_code", "quantity", "gone")) == [
        "gone",
        "nope",
    ]


def test_migrate_is_idempotent_and_ping_answers(store):
    store.migrate()
    store.migrate()
    assert store.ping() is True


# --- sessions --------------------------------------------------------------------------------

from warehouse_core.audit import Event, EventKind  # noqa: E402
from warehouse_core.model import Delivery, InvoiceStatus, SessionPhase, SessionState  # noqa: E402

NOW = at("2026-11-26T11:00")
COLUMNS = ("invoice_number", "invoice_date", "customer_code", "customer_name", "delivery_address", "quantity", "value")


def imported_day(store, day=DAY, invoices=("600000001", "600000004", "600000002", "600000001")):
    with store.unit_of_work() as uow:
        file_id = uow.record_file(record(day=day, sha=day.isoformat()))
        insert(uow, file_id, day, [line(n + 1, number) for n, number in enumerate(invoices)])
        uow.open_session(day)


def test_session_transitions(store):
    with store.unit_of_work() as uow:
        assert uow.session(DAY) is None
        assert not uow.start_session(DAY, NOW) and not uow.close_session(DAY, NOW)
    imported_day(store)
    with store.unit_of_work() as uow:
        uow.open_session(DAY)  # no change when it exists
        assert uow.session(DAY).state is SessionState.READY
        assert not uow.update_session(DAY, processed=1)
        assert uow.start_session(DAY, NOW)
        assert not uow.start_session(DAY, NOW)
        assert uow.update_session(DAY, total=3, export_file="S.txt")
        assert uow.update_session(DAY, processed=2, phase=SessionPhase.UPLOADING)
        session = uow.session(DAY)
        assert (session.state, session.phase, session.total, session.processed, session.export_file) == (
            SessionState.RUNNING,
            SessionPhase.UPLOADING,
            3,
            2,
            "S.txt",
        )
        assert session.started_at == NOW
        assert uow.running_days() == [DAY]
        assert uow.finish_session(DAY, SessionState.FAILED, NOW, "the remote log reports an error")
        assert not uow.finish_session(DAY, SessionState.COMPLETED, NOW, None)
        assert uow.session(DAY).detail == "the remote log reports an error"
        assert uow.close_session(DAY, NOW) and not uow.close_session(DAY, NOW)
        assert uow.session(DAY).state is SessionState.CLOSED and uow.running_days() == []


@pytest.mark.parametrize("phase", list(SessionPhase))
def test_a_running_session_keeps_every_phase_a_worker_goes_through(store, phase):
    imported_day(store)
    with store.unit_of_work() as uow:
        assert uow.start_session(DAY, NOW)
        assert uow.update_session(DAY, phase=phase, export_file="S.txt")
        assert uow.session(DAY).phase is phase
        assert uow.close_session(DAY, NOW)
        assert uow.session(DAY).phase is phase  # Close settles by the phase it found


def test_a_running_session_counts_its_tries_and_a_clean_stop_gives_one_back(store):
    with store.unit_of_work() as uow:
        uow.open_session(DAY)
        assert uow.begin_session_try(DAY) is None  # ready: nothing to try
        assert uow.start_session(DAY, NOW)
        assert (uow.begin_session_try(DAY), uow.begin_session_try(DAY)) == (1, 2)
        uow.end_session_try(DAY)
        assert uow.session(DAY).tries == 1
        assert uow.update_session(DAY, detail="try 1 of 4 failed")
        assert uow.session(DAY).detail == "try 1 of 4 failed"
        assert not uow.set_closed_detail(DAY, "delivered")  # running: not closed yet
        assert uow.close_session(DAY, NOW)
        assert uow.begin_session_try(DAY) is None
        assert uow.set_closed_detail(DAY, "closed after S.txt was delivered")
        assert uow.session(DAY).detail == "closed after S.txt was delivered"


def test_a_running_sessions_detail_is_cleared_when_the_worker_moves_on_and_goes_with_a_close(store):
    """A running session's detail is a note of its worker's (a failed try, a wait for an earlier
    day): kept while other fields change, cleared when asked; a Close ends it with the run. A
    failed session's detail is why it failed, and stays through its Close."""
    imported_day(store)
    with store.unit_of_work() as uow:
        assert uow.start_session(DAY, NOW)
        assert uow.update_session(DAY, detail="try 1 of 4 failed, retried in 10 s: disk full")
        assert uow.update_session(DAY, processed=1)
        assert uow.session(DAY).detail == "try 1 of 4 failed, retried in 10 s: disk full"  # kept when not given
        assert uow.update_session(DAY, phase=SessionPhase.UPLOADING, clear_detail=True)
        cleared = uow.session(DAY)
        assert (cleared.detail, cleared.phase, cleared.processed) == (None, SessionPhase.UPLOADING, 1)
        assert uow.update_session(DAY, clear_detail=True)  # nothing else given: only the detail goes
        assert uow.update_session(DAY, detail="waiting for the outbound server")
        assert uow.close_session(DAY, NOW)
        assert uow.session(DAY).detail is None  # the note ended with the run
        assert not uow.update_session(DAY, clear_detail=True)  # closed: no longer running
    with store.unit_of_work() as uow:
        assert uow.retry_session(DAY) is False  # closed is final
    other = DAY + dt.timedelta(days=1)
    imported_day(store, day=other)
    with store.unit_of_work() as uow:
        assert uow.start_session(other, NOW)
        assert uow.finish_session(other, SessionState.FAILED, NOW, "the upload failed after 3 tries")
        assert uow.close_session(other, NOW)
        assert uow.session(other).detail == "the upload failed after 3 tries"  # a failed day's reason stays


def test_the_log_positions_at_the_rename_are_kept_and_a_retry_forgets_them(store):
    imported_day(store)
    positions = {"/var/log/importer-20261126.log": 5120, "/var/log/importer-20261127.log": 0}
    with store.unit_of_work() as uow:
        assert uow.start_session(DAY, NOW)
        assert uow.session(DAY).log_positions is None
        assert uow.update_session(DAY, phase=SessionPhase.RENAMING, log_positions=positions)
    with store.unit_of_work() as uow:
        assert uow.session(DAY).log_positions == positions
        assert uow.update_session(DAY, phase=SessionPhase.WATCHING)  # kept when not given
        assert uow.session(DAY).log_positions == positions
        assert uow.finish_session(DAY, SessionState.FAILED, NOW, "no confirmation")
        assert uow.retry_session(DAY)
        assert uow.session(DAY).log_positions is None  # the next run notes its own


def test_closing_a_running_session_makes_its_progress_updates_fail(store):
    imported_day(store)
    with store.unit_of_work() as uow:
        uow.start_session(DAY, NOW)
        assert uow.close_session(DAY, NOW)
        assert not uow.update_session(DAY, processed=5)
        assert not uow.finish_session(DAY, SessionState.COMPLETED, NOW, None)


def test_concurrent_starts_give_exactly_one_start(store):
    imported_day(store)
    barrier = threading.Barrier(4)
    results: List[bool] = []

    def start():
        barrier.wait(5)
        with store.unit_of_work() as uow:
            results.append(uow.start_session(DAY, NOW))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == [False, False, False, True]


def test_export_lines_join_the_view_in_line_order_and_skip(store):
    imported_day(store)
    with store.unit_of_work() as uow:
        assert uow.refresh_invoice_statuses(DAY) == 3
    with store.export_lines(DAY, COLUMNS, skip=0) as blocks:
        exported = b"".join(blocks).splitlines(keepends=True)
    assert exported == [
        b"600000001|2026-11-20|C001|Rossi Alimentari|Via Roma 1, Milano|1|1.50\n",
        b"600000002|2026-11-21|C002|Bianchi & Figli|Corso Italia 22, Torino|3|1.50\n",
        b"600000001|2026-11-20|C001|Rossi Alimentari|Via Roma 1, Milano|4|1.50\n",
    ]
    with store.export_lines(DAY, ("invoice_number", "quantity"), skip=2) as blocks:
        assert b"".join(blocks) == b"600000001|4\n"


def test_export_lines_keep_one_record_per_line_whatever_the_text(store):
    awkward = 'a|b\\c\td\re "q" caffè \b\f\v\\n'  # COPY TO escapes each of these but '|'
    with store.unit_of_work() as uow:
        file_id = uow.record_file(record())
        insert(uow, file_id, DAY, [line(1, "600000001"), line(2, "600000099")])
        uow.open_session(DAY)
    with store.unit_of_work() as uow:
        uow.refresh_invoice_statuses(DAY)
    if isinstance(store, FakeStore):
        store.data.lines[0].line = store.data.lines[0].line._replace(description=awkward)
    else:
        with store.connection() as connection:
            connection.execute("UPDATE invoice_line SET description = %s WHERE line_number = 1", (awkward,))
    columns = ("invoice_number", "description", "value", "customer_code", "delivery_address")
    with store.export_lines(DAY, columns, skip=0) as blocks:
        assert b"".join(blocks) == '600000001|a/b\\c\td e "q" caffè \b\f\v\\n|1.50|C001|Via Roma 1, Milano\n'.encode(
            "utf-8"
        )


AWKWARD_VIEW_COLUMNS = ("invoice_number", "invoice_date", "amount", "note", "flag", "pieces", "remark")
AWKWARD_VIEW_TYPES = ("text", "date", "numeric", "text", "boolean", "integer", "text")
AWKWARD_VIEW_ROWS = (
    ("600000001", dt.date(2026, 1, 2), Decimal("12.500"), None, True, 7, "a|b\nc\rd"),
    ("600000002", None, Decimal("0.0"), "", False, None, "|\r\n|"),
    ("600000003", dt.date(1999, 12, 31), Decimal("-0.00"), "caffè", None, -3, None),
)
AWKWARD_LINES = (
    line(1, "600000001", categories=("noci | mandorle", "secche"), value="1.50"),
    line(2, "600000002", value="10"),
    line(3, "600000003", value="-0.00"),
    line(4, "600000001", value="0.000100"),
)


def awkward_store(store, db_schema):
    """A store of the same kind as ``store`` whose invoice view holds AWKWARD_VIEW_ROWS."""
    if isinstance(store, FakeStore):
        return FakeStore(invoice_view={row[0]: dict(zip(AWKWARD_VIEW_COLUMNS, row)) for row in AWKWARD_VIEW_ROWS})
    columns = ", ".join("{} {}".format(*pair) for pair in zip(AWKWARD_VIEW_COLUMNS, AWKWARD_VIEW_TYPES))
    with store.connection() as connection:
        connection.execute('CREATE TABLE "{}".awkward ({})'.format(db_schema, columns))
        with connection.cursor().copy('COPY "{}".awkward FROM STDIN'.format(db_schema)) as copy:
            for row in AWKWARD_VIEW_ROWS:
                copy.write_row(row)
        connection.execute('CREATE VIEW "{0}".awkward_view AS SELECT * FROM "{0}".awkward'.format(db_schema))
    return PsycopgStore(store.url, schema=db_schema, invoice_view=db_schema + ".awkward_view")


def test_export_lines_are_export_line_of_the_values_byte_for_byte(store, request):
    """The one rule (run_session.export_line) and PostgreSQL's text of each type agree on dates, numbers
    with trailing zeros or a negative zero, booleans, NULL and empty columns, '|' and line breaks."""
    db_schema = None if isinstance(store, FakeStore) else request.getfixturevalue("db_schema")
    awkward = awkward_store(store, db_schema)
    try:
        with awkward.unit_of_work() as uow:
            file_id = uow.record_file(record())
            insert(uow, file_id, DAY, list(AWKWARD_LINES))
            uow.open_session(DAY)
        for each in AWKWARD_LINES:  # a description with '|' and a line break, as no file could carry it
            description = "{} |\n{}\r".format(each.description, each.line_number)
            if isinstance(awkward, FakeStore):
                stored = next(s for s in awkward.data.lines if s.line.line_number == each.line_number)
                stored.line = stored.line._replace(description=description)
            else:
                with awkward.connection() as connection:
                    connection.execute(
                        "UPDATE invoice_line SET description = %s WHERE line_number = %s",
                        (description, each.line_number),
                    )
        with awkward.unit_of_work() as uow:
            assert uow.refresh_invoice_statuses(DAY) == len(AWKWARD_LINES)
        columns = AWKWARD_VIEW_COLUMNS + ("line_number", "quantity", "description", "value", "day")
        with awkward.export_lines(DAY, columns, skip=0) as blocks:
            exported = b"".join(blocks)
    finally:
        if not isinstance(awkward, FakeStore):
            awkward.close()
    view = {row[0]: row for row in AWKWARD_VIEW_ROWS}
    expected = "".join(
        export_line(
            view[each.invoice_number]
            + (
                each.line_number,
                each.quantity,
                "{} |\n{}\r".format(each.description, each.line_number),
                each.value,
                DAY,
            )
        )
        + "\n"
        for each in AWKWARD_LINES
    )
    assert exported == expected.encode("utf-8")


def test_export_lines_come_in_blocks_of_whole_lines(store):
    imported_day(store, invoices=("600000001",) * 4500)
    with store.unit_of_work() as uow:
        uow.refresh_invoice_statuses(DAY)
    with store.export_lines(DAY, ("quantity",), skip=1000) as blocks:
        received = list(blocks)
    assert all(block.endswith(b"\n") for block in received)
    assert b"".join(received).split() == [str(n).encode() for n in range(1001, 4501)]


def test_export_lines_follow_line_numbers_not_the_order_lines_were_stored(store):
    with store.unit_of_work() as uow:
        file_id = uow.record_file(record())
        insert(uow, file_id, DAY, [line(n, "600000001") for n in range(4500, 0, -1)])
        uow.open_session(DAY)
    with store.unit_of_work() as uow:
        uow.refresh_invoice_statuses(DAY)
    with store.export_lines(DAY, ("quantity",), skip=0) as blocks:
        assert b"".join(blocks).split() == [str(n).encode() for n in range(1, 4501)]


def test_statuses_recomputed_and_already_exported_on_a_later_day(store):
    imported_day(store)
    with store.unit_of_work() as uow:
        assert uow.invoices_with_status(DAY, InvoiceStatus.NOT_FOUND) == ("600000004",)
        uow.record_exported(DAY)
    later = DAY + dt.timedelta(days=1)
    imported_day(store, day=later, invoices=("600000001", "600000005"))
    with store.unit_of_work() as uow:
        assert uow.invoices_with_status(later, InvoiceStatus.ALREADY_EXPORTED) == ("600000001",)
        assert uow.refresh_invoice_statuses(later) == 1
        assert uow.invoices_with_status(later, InvoiceStatus.VALID) == ("600000005",)
        assert uow.refresh_invoice_statuses(DAY) == 3  # the same day's own export is not "in the past"


# --- the delivery ledger (SPEC §5) ---------------------------------------------------------------


def test_a_session_has_no_delivery_until_one_is_recorded_and_any_state_may_record_it(store):
    imported_day(store)
    with store.unit_of_work() as uow:
        assert uow.session(DAY).delivery is None
        assert uow.unknown_delivery_days() == []
        assert not uow.set_delivery(DAY + dt.timedelta(days=1), Delivery.UNKNOWN)  # no session that day
        assert uow.start_session(DAY, NOW)
        assert uow.set_delivery(DAY, Delivery.UNKNOWN)
        assert uow.session(DAY).delivery is Delivery.UNKNOWN
        assert uow.close_session(DAY, NOW)
        assert uow.unknown_delivery_days() == [DAY]
        assert uow.set_delivery(DAY, Delivery.YES)  # closed: the settle job still records it
        assert uow.session(DAY).delivery is Delivery.YES
        assert uow.session(DAY).as_dict()["delivery"] == "yes"
        assert uow.unknown_delivery_days() == []


def test_unknown_delivery_days_are_every_unknown_day_oldest_first_whatever_its_state(store):
    days = [DAY - dt.timedelta(days=400), DAY - dt.timedelta(days=3), DAY]
    for day in reversed(days):
        imported_day(store, day=day)
    with store.unit_of_work() as uow:
        assert uow.start_session(days[1], NOW) and uow.finish_session(days[1], SessionState.FAILED, NOW, "x")
        assert uow.close_session(days[0], NOW)
        for day in days:
            assert uow.set_delivery(day, Delivery.UNKNOWN)
        assert uow.set_delivery(days[1], Delivery.NO)  # settled
        assert uow.unknown_delivery_days() == [days[0], days[2]]


def test_days_needing_attention_are_the_earlier_days_someone_must_look_at(store):
    today = DAY
    ago = [today - dt.timedelta(days=n) for n in range(0, 33)]
    wanted = {
        1: "running",
        2: "failed",
        3: "closed-unknown",
        4: "closed-yes",
        5: "ready-retried",
        6: "ready",
        7: "completed",
        31: "failed",  # out of the window
        32: "ready-retried",  # retried on the window's last day: listed until started or closed
        0: "failed",  # today is not an earlier day
        30: "failed",  # the window's first day
    }
    for n in wanted:
        imported_day(store, day=ago[n])
    with store.unit_of_work() as uow:
        for n, what in wanted.items():
            day = ago[n]
            if what == "ready":
                continue
            assert uow.start_session(day, NOW)
            if what == "running":
                continue
            if what in ("failed", "ready-retried"):
                assert uow.finish_session(day, SessionState.FAILED, NOW, "broken")
            if what == "ready-retried":
                assert uow.retry_session(day)
                uow.record_event(Event(day, EventKind.SESSION_RETRIED, NOW, "ops", {"reason": "again"}))
            if what == "completed":
                assert uow.finish_session(day, SessionState.COMPLETED, NOW, None)
            if what.startswith("closed"):
                assert uow.close_session(day, NOW)
                uow.set_delivery(day, Delivery.UNKNOWN if what == "closed-unknown" else Delivery.YES)
        found = uow.days_needing_attention(today, today - dt.timedelta(days=30))
    assert [(s.day, s.state.value) for s in found] == [
        (ago[32], "ready"),
        (ago[30], "failed"),
        (ago[5], "ready"),
        (ago[3], "closed"),
        (ago[2], "failed"),
        (ago[1], "running"),
    ]
    assert found[3].delivery is Delivery.UNKNOWN


def test_a_day_holds_its_valid_invoices_and_releasing_them_makes_them_valid_again(store):
    imported_day(store)
    later = DAY + dt.timedelta(days=1)
    imported_day(store, day=later, invoices=("600000001", "600000005"))
    with store.unit_of_work() as uow:
        uow.refresh_invoice_statuses(DAY)
        assert uow.hold_exported(DAY) == ()
        assert uow.hold_exported(DAY) == ()  # again: nothing changes
        assert uow.refresh_invoice_statuses(later) == 1  # 600000001 is held by DAY
        uow.release_exported(DAY)
        assert uow.refresh_invoice_statuses(later) == 2
        assert uow.hold_exported(later) == ()
        # DAY's export, computed before, still lists 600000001: it may not hold it now.
        assert uow.hold_exported(DAY) == ("600000001",)
        uow.release_exported(later)
        assert uow.refresh_invoice_statuses(later) == 2  # nothing of DAY was held


def test_a_hold_proven_delivered_is_never_released_only_pending_ones_are(store):
    """A rename's holds are pending until proof; once the day's file is proven delivered
    (record_exported) they stay, so a redelivery that never arrived releases only its own."""
    imported_day(store)
    later = DAY + dt.timedelta(days=1)
    imported_day(store, day=later, invoices=("600000001", "600000005"))
    with store.unit_of_work() as uow:
        uow.refresh_invoice_statuses(DAY)
        assert uow.hold_exported(DAY) == ()
        assert uow.release_exported(DAY) is False  # only pending holds: nothing of DAY stays
        assert uow.refresh_invoice_statuses(later) == 2
        assert uow.hold_exported(DAY) == ()
        uow.record_exported(DAY)  # the rename proven: delivered
        assert uow.hold_exported(DAY) == ()  # a redelivery's hold: the delivered ones stay delivered
        assert uow.release_exported(DAY) is True
        assert uow.refresh_invoice_statuses(later) == 1  # 600000001 stays DAY's


def test_an_invoice_held_by_any_other_day_is_already_exported_a_later_one_too(store):
    """A retried earlier day must not ship what a later day shipped meanwhile (SPEC §5: an invoice
    is in at most one export whose delivery is yes or unknown)."""
    imported_day(store)
    later = DAY + dt.timedelta(days=1)
    imported_day(store, day=later, invoices=("600000001", "600000005"))
    with store.unit_of_work() as uow:
        assert uow.refresh_invoice_statuses(later) == 2
        assert uow.hold_exported(later) == ()
        assert uow.refresh_invoice_statuses(DAY) == 1  # 600000001 (two lines) is the later day's
        assert uow.invoices_with_status(DAY, InvoiceStatus.ALREADY_EXPORTED) == ("600000001",)
        assert uow.refresh_invoice_statuses(later) == 2  # a day's own holds are not "exported"


def test_two_days_holding_one_invoice_at_once_get_one_hold(real_store):
    """The check and the hold are one step: two transactions cannot both pass the check."""
    store = real_store
    days = (DAY, DAY + dt.timedelta(days=1))
    for day in days:
        imported_day(store, day=day, invoices=("600000001",))
    with store.unit_of_work() as uow:
        for day in days:
            uow.refresh_invoice_statuses(day)
    barrier = threading.Barrier(2)
    results: Dict[dt.date, Any] = {}

    def hold(day):
        with store.unit_of_work() as uow:
            barrier.wait(5)
            results[day] = uow.hold_exported(day)

    threads = [threading.Thread(target=hold, args=(day,)) for day in days]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results.values()) == [(), ("600000001",)]


def test_claim_session_is_exclusive(store):
    with store.claim_session(DAY) as first:
        assert first
        result = []
        thread = threading.Thread(target=lambda: result.append(_try_claim(store)))
        thread.start()
        thread.join()
        assert result == [False]


def test_a_claim_is_lost_with_its_connection(real_store):
    """A database restart ends the connection that held the lock: the worker must know."""
    with real_store.claim_session(DAY) as claimed:
        assert claimed and real_store.still_claimed(DAY)
        with real_store.connection() as other:
            other.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
            )
        assert not real_store.still_claimed(DAY)
    assert not real_store.still_claimed(DAY)
    with real_store.claim_session(DAY) as again:  # free again, and the pool still works
        assert again and real_store.still_claimed(DAY)


def _try_claim(store):
    with store.claim_session(DAY) as claimed:
        return claimed


def test_an_invoice_listed_twice_in_the_view_is_exported_once(real_store, db_schema):
    with real_store.connection() as connection:
        connection.execute(
            'CREATE VIEW "{}".doubled_view AS SELECT * FROM public.invoice_view'
            " UNION ALL SELECT * FROM public.invoice_view WHERE invoice_number = '600000001'".format(db_schema)
        )
    store = PsycopgStore(real_store.url, schema=db_schema, invoice_view=db_schema + ".doubled_view")
    try:
        imported_day(store)
        with store.unit_of_work() as uow:
            assert uow.refresh_invoice_statuses(DAY) == 3
        with store.export_lines(DAY, ("invoice_number", "customer_code", "quantity"), skip=0) as blocks:
            assert b"".join(blocks) == b"600000001|C001|1\n600000002|C002|3\n600000001|C001|4\n"
    finally:
        store.close()


def test_the_retention_removes_one_file_s_lines_and_the_day_still_reads_and_guards(store, inspector):
    """A day whose lines were removed: its statuses and export are empty, a second removal finds
    nothing, the other day keeps every line, and its exported invoices still count for later days."""
    imported_day(store)
    later, last = DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)
    imported_day(store, day=later, invoices=("600000002", "600000005"))
    with store.unit_of_work() as uow:
        uow.record_exported(DAY)
        file_id = uow.find_file(record().name, DAY.isoformat()).id
        assert uow.drop_file_lines(file_id, DAY)
    with store.unit_of_work() as uow:
        assert not uow.drop_file_lines(file_id, DAY)
        assert uow.refresh_invoice_statuses(DAY) == 0
        assert uow.invoices_with_status(DAY, InvoiceStatus.VALID) == ()
        assert uow.refresh_invoice_statuses(later) == 1
    assert [row["invoice_number"] for row in inspector.lines()] == ["600000002", "600000005"]
    with store.export_lines(DAY, ("invoice_number",), skip=0) as blocks:
        assert b"".join(blocks) == b""
    with store.export_lines(later, ("invoice_number",), skip=0) as blocks:
        assert b"".join(blocks) == b"600000005\n"  # 600000002 went out on DAY
    imported_day(store, day=last, invoices=("600000001", "600000002"))
    with store.unit_of_work() as uow:
        assert uow.invoices_with_status(last, InvoiceStatus.ALREADY_EXPORTED) == ("600000001", "600000002")
        assert uow.day_has_data(DAY), "what was recorded of the file stays"


def partitions_of(connection, parent):
    return [
        row[0]
        for row in connection.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname",
            (parent,),
        )
    ]


def test_each_imported_file_has_partitions_of_its_own_and_a_rejected_one_leaves_none(real_store):
    imported_day(real_store)
    with real_store.unit_of_work() as uow:
        file_id = uow.record_file(record(day=DAY + dt.timedelta(days=1), sha="cd" * 32))
        with pytest.raises(RuntimeError):
            with uow.savepoint():
                insert(uow, file_id, DAY + dt.timedelta(days=1), [line(2, "600000001")])
                raise RuntimeError("rejected")
    with real_store.connection() as connection:
        [imported] = [row[0] for row in connection.execute("SELECT id FROM inbound_file WHERE day = %s", (DAY,))]
        assert partitions_of(connection, "invoice_line") == ["invoice_line_20261126_{}".format(imported)]
        assert partitions_of(connection, "category_lines") == ["category_lines_20261126_{}".format(imported)]
        plan = "\n".join(
            row[0]
            for row in connection.execute(
                "EXPLAIN SELECT * FROM invoice_line l JOIN invoice_line_category lc"
                " ON lc.file_id = l.file_id AND lc.line_number = l.line_number WHERE l.file_id = %s",
                (imported,),
            )
        )
    assert "invoice_line_20261126_{}".format(imported) in plan and "_before_007" not in plan


def test_a_files_links_are_one_row_per_category_with_its_lines_ascending_across_spilled_chunks(real_store, monkeypatch):
    """The links wait on disk a few lines at a time (blocks of 3, a chunk of 4 lines here) and go as
    one array per category, however many chunks it spans; the view gives one row per link, as
    before 011."""
    monkeypatch.setattr(files_and_lines, "CHUNK_LINES", 4)
    names = ("frutta", "pane", "noci")
    lines = [line(n, "6000000{:02d}".format(n), categories=names[: 1 + n % 3]) for n in range(2, 21)]
    with real_store.unit_of_work() as uow:
        file_id = uow.record_file(record())
        uow.insert_lines(file_id, DAY, blocks_of(lines, 3))
    with real_store.connection() as connection:
        arrays = dict(
            connection.execute(
                "SELECT c.name, s.line_numbers FROM category_lines s JOIN category c ON c.id = s.category_id"
                " WHERE s.file_id = %s",
                (file_id,),
            ).fetchall()
        )
        links = connection.execute(
            "SELECT c.name, lc.line_number FROM invoice_line_category lc JOIN category c ON c.id = lc.category_id"
            " WHERE lc.file_id = %s ORDER BY 1, 2",
            (file_id,),
        ).fetchall()
    expected = {name: [each.line_number for each in lines if name in each.categories] for name in names}
    assert arrays == expected
    assert links == sorted((name, number) for name, numbers in expected.items() for number in numbers)


@pytest.mark.parametrize("plain", [True, False], ids=["plain lines", "parsed lines"])
def test_invoices_are_looked_up_a_stretch_at_a_time_and_each_line_gets_its_own_status(real_store, monkeypatch, plain):
    """The lines go a stretch at a time (3 lines here), each stretch's new invoices looked up
    before its rows are written: an invoice first met in a later stretch is looked up then, one met
    before keeps the status it was given, whether the lines are plain (as the file spells them) or
    parsed one by one."""
    monkeypatch.setattr(files_and_lines, "LOOKUP_LINES", 3)
    invoices = ["600000001", "600000004", "600000001", "600000002", "600000001", "600000001", "600000099"]
    invoices += ["600000004", "600000002"]
    lines = [line(number, invoice) for number, invoice in enumerate(invoices, start=1)]
    if plain:
        text = "\n".join("{}|1|frutta|1.50".format(invoice) for invoice in invoices).encode("utf-8")
        blocks = parse_blocks(io.BytesIO(text), UTF8, ParseTally(), block_size=40)
    else:
        blocks = blocks_of(lines, 2)
    with real_store.unit_of_work() as uow:
        stored = uow.insert_lines(uow.record_file(record()), DAY, blocks)
    assert (stored.stored, stored.not_found, stored.not_found_lines) == (9, ("600000004", "600000099"), 3)
    statuses = [(row["line_number"], row["status"]) for row in PostgresInspector(real_store).lines()]
    missing = {"600000004", "600000099"}
    assert statuses == [(n, "not_found" if i in missing else "valid") for n, i in enumerate(invoices, start=1)]
