"""History and audit (SPEC §7), retry of a failed day (§5) and retention (§8) over the fakes: each
step writes its event with its actor, the days read back, and the refusals are one line each."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from tests.conftest import MALFORMED_SAMPLE, VALID_SAMPLE, at
from tests.fakes import WorkerKilled
from warehouse_core.errors import Conflict, InvalidArgument, TransferError
from warehouse_core.model import SessionPhase, SessionState
from warehouse_core.usecases.cleanup import CleanUp
from warehouse_core.usecases.history import (
    MAX_PAGE_SIZE,
    NotFound,
    day_detail,
    export_download,
    inbound_download,
    list_days,
    page_limit,
    problems_csv,
    spreadsheet_safe,
)

DAY = dt.date(2026, 11, 26)
EXPORT = "Spedizioni20261126_6.txt"
FAILED_FILE = "Letture20261126083015123_9.txt"
SHIPPED = {"600000001", "600000002", "600000005", "600000006", "600000007", "600000008"}


def kinds(world, day=DAY):
    return [(e.kind.value, e.actor) for e in day_detail(world.store, day).events]


def test_a_completed_day_has_its_whole_timeline_in_order(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.deliver()
    world.importer_confirms()
    world.core.start_session(world.clock.now(), actor="anna")
    world.work()
    world.deliver()
    assert kinds(world) == [
        ("file-seen", "system"),
        ("file-downloaded", "system"),
        ("file-archived", "system"),
        ("file-imported", "system"),
        ("mail-queued", "system"),
        ("file-deleted", "system"),
        ("mail-sent", "system"),
        ("session-started", "anna"),
        ("session-progress", "system"),
        ("session-uploaded", "system"),
        ("session-confirmed", "system"),
        ("mail-queued", "system"),
        ("mail-sent", "system"),
    ]
    day = day_detail(world.store, DAY)
    imported = [e for e in day.events if e.kind.value == "file-imported"][0]
    assert imported.detail["stored"] == 8 and imported.detail["ignored"] == 2 and imported.detail["valid"] == 6
    assert imported.at == at("2026-11-26T10:00")
    assert day.state == "completed" and day.reconciliation().reconciled is True
    assert day.as_dict()["mails"] == 2


def test_a_close_is_in_the_timeline_with_who_closed_it_and_from_which_state(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.core.start_session(world.clock.now(), actor="anna")
    world.clock.advance(60)
    world.core.close_session(world.clock.now(), actor="bruno")
    [closed] = [e for e in day_detail(world.store, DAY).events if e.kind.value == "session-closed"]
    assert (closed.actor, closed.detail, closed.at) == ("bruno", {"from": "running"}, world.clock.now())


def test_a_rejected_file_keeps_every_reason_and_the_problems_download_has_them(world):
    world.inbound.files[MALFORMED_SAMPLE.name] = MALFORMED_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    day = day_detail(world.store, DAY)
    assert day.state == "rejected"
    [rejected] = [e for e in day.events if e.kind.value == "file-rejected"]
    assert [r["line"] for r in rejected.detail["reasons"]] == [2, 3, 4, 5]
    csv_text = "".join(problems_csv(world.store, world.archive, DAY))
    rows = csv_text.strip().splitlines()
    assert rows[0] == "file,line,reason,text" and len(rows) == 5
    assert rows[2].startswith(MALFORMED_SAMPLE.name + ",3,quantity 'forty' is not a whole number,")
    assert "forty" in rows[2].split(",", 3)[3]
    name, stream = inbound_download(world.store, world.archive, DAY)
    assert name == MALFORMED_SAMPLE.name and stream.read() == MALFORMED_SAMPLE.read_bytes()


def test_problem_cells_a_spreadsheet_would_take_for_a_formula_start_with_a_quote(world):
    """problems.csv is opened in a spreadsheet, and its cells hold what the sender wrote: a cell
    that starts with = + - @, a tab or a carriage return may run as a formula there (OWASP, CSV
    injection), so it gets a leading single quote. The parser takes only lines whose first field
    starts with 6, after blanks: a rejected line can start with a tab or a CR; an upload's name
    (made safe) with a '-'."""
    lines = MALFORMED_SAMPLE.read_bytes().split(b"\n")
    lines[2] = b"\t600000004|forty|Latticini|1040.00"
    lines[3] = b"\r600000005|7|Surgelati|70,7"
    world.clock.set(at("2026-11-26T10:00"))
    world.core.import_upload("-2+3.txt", io.BytesIO(b"\n".join(lines)), world.clock.now(), actor="anna")
    rows = list(csv.reader(io.StringIO("".join(problems_csv(world.store, world.archive, DAY)), newline="")))
    assert rows[0] == ["file", "line", "reason", "text"] and len(rows) == 5
    assert {row[0] for row in rows[1:]} == {"'-2_3.txt"}
    texts = {int(row[1]): row[3] for row in rows[1:]}
    assert texts[3] == "'\t600000004|forty|Latticini|1040.00"
    assert texts[4] == "'\r600000005|7|Surgelati|70,7"
    assert texts[2] == lines[1].decode(), "an ordinary cell is left as it is"


@pytest.mark.parametrize("cell", ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "\r=1+1"])
def test_every_cell_that_starts_like_a_formula_is_quoted(cell):
    assert spreadsheet_safe(cell) == "'" + cell
    assert spreadsheet_safe("6" + cell) == "6" + cell


def test_days_are_listed_newest_first_in_pages_and_weekends_are_not_rows(world):
    for day in ("2026-11-20", "2026-11-23", "2026-11-24", "2026-11-25"):  # Fri, then Mon-Wed: no weekend
        world.poll(day + "T19:00")
    page = list_days(world.store, limit=3)
    assert [d.day.isoformat() for d in page.days] == ["2026-11-25", "2026-11-24", "2026-11-23"]
    assert page.next == dt.date(2026, 11, 23) and all(d.state == "no-file" for d in page.days)
    rest = list_days(world.store, before=page.next, limit=3)
    assert [d.day.isoformat() for d in rest.days] == ["2026-11-20"] and rest.next is None
    with pytest.raises(NotFound):
        day_detail(world.store, dt.date(2026, 11, 21))


# --- retry of a failed day -----------------------------------------------------------------


@pytest.fixture
def failed(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.outbound.fail_next = 3
    world.core.start_session(world.clock.now(), actor="anna")
    world.work()
    assert world.core.session_status().state is SessionState.FAILED
    return world


def retry(world, reason="outbound FTP was down", redeliver=False, day=DAY):
    return world.core.retry_session(day, reason, "cli:ops", world.clock.now(), redeliver=redeliver)


def test_a_failed_day_is_retried_then_completed_and_the_retry_is_audited(failed):
    ready = retry(failed)
    assert ready.state is SessionState.READY and ready.export_file is None
    assert (DAY, EXPORT) not in failed.exports.files, "the failed run's export is not resumed"
    [mail] = failed.store.mails("session-retry")
    assert "cli:ops" in mail.subject and "outbound FTP was down" in mail.text
    [event] = [e for e in day_detail(failed.store, DAY).events if e.kind.value == "session-retried"]
    assert event.actor == "cli:ops" and event.detail["reason"] == "outbound FTP was down"
    assert "failed after 3 tries" in event.detail["previous_detail"]
    failed.importer_confirms()
    failed.core.start_session(failed.clock.now(), actor="anna")
    failed.work()
    assert failed.core.session_status().state is SessionState.COMPLETED
    assert list(failed.outbound.files) == [EXPORT]


def test_a_day_ops_can_retry_can_then_be_started_up_to_the_last_day_the_page_reaches(failed):
    """The 26th, retried on the last day it is still in the page's earlier list (30 days), is
    listed as ready and can be started there."""
    failed.clock.set(at("2026-12-26T09:00"))
    assert retry(failed).state is SessionState.READY
    assert [s.day for s in failed.core.status(failed.clock.now().date()).earlier] == [DAY]
    assert failed.core.start_session(failed.clock.now(), day=DAY).state is SessionState.RUNNING


def test_a_retry_of_a_day_the_page_no_longer_reaches_is_refused_saying_why_and_what_to_do(failed):
    """Review B, finding 3: 40 days later `session retry` was accepted and mailed ("Start on the
    page exports it"), but the day was in no earlier list and its Start answered 409 "was not
    retried": ready for ever. A day the page cannot start is not retried: one line says why (the
    page starts days of the last 30 only) and what to do; nothing changes, nothing is mailed."""
    failed.clock.set(at("2027-01-05T09:00"))
    with pytest.raises(Conflict) as caught:
        retry(failed)
    assert caught.value.code == "retry_out_of_reach"
    sentence = failed.core.sentences.text(caught.value.code, **caught.value.values)
    assert sentence == (
        "2026-11-26 is more than 30 days ago: the page no longer starts it, so it is not retried"
        " (nothing changed). To ship its invoices, have them sent again in a current day's file."
    )
    assert failed.core.session_status(DAY).state is SessionState.FAILED
    assert failed.store.mails("session-retry") == []
    assert [e for e in day_detail(failed.store, DAY).events if e.kind.value == "session-retried"] == []


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_retry_without_a_reason_is_refused(failed, reason):
    with pytest.raises(Conflict) as caught:
        retry(failed, reason=reason)
    assert caught.value.code == "retry_no_reason"
    assert "needs a reason" in failed.core.sentences.text(caught.value.code, **caught.value.values)
    assert failed.core.session_status().state is SessionState.FAILED


def test_only_a_failed_day_can_be_retried(world):
    with pytest.raises(Conflict) as caught:
        retry(world)
    assert caught.value.code == "retry_not_failed"
    sentence = world.core.sentences.text(caught.value.code, **caught.value.values)
    assert sentence == "The session for 2026-11-26 is none, not failed: only a failed day can be retried."


def test_a_failed_run_that_had_delivered_its_file_needs_redeliver(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.importer_confirms(records=5)  # the consumer read the file and counted wrong
    world.core.start_session(world.clock.now())
    world.work()
    assert world.core.session_status().state is SessionState.FAILED
    with pytest.raises(Conflict) as caught:
        retry(world)
    assert caught.value.code == "retry_delivered"
    sentence = world.core.sentences.text(caught.value.code, **caught.value.values)
    assert EXPORT in sentence and "add --redeliver" in sentence and "\n" not in sentence
    assert retry(world, redeliver=True).state is SessionState.READY
    assert "--redeliver" in world.store.mails("session-retry")[0].text


def test_a_failed_upload_whose_rename_went_through_needs_redeliver(world):
    """The server renamed the file into place but the client saw an error (the reply was lost):
    the run failed in the upload phase, yet the consumer may have read the file already."""
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")

    def reply_lost(name, data):
        raise TransferError("RNTO {}: timed out waiting for the reply".format(name))

    world.outbound.on_upload = reply_lost
    world.core.start_session(world.clock.now())
    world.work()
    assert world.core.session_status().state is SessionState.FAILED
    assert EXPORT in world.outbound.files
    with pytest.raises(Conflict) as caught:
        retry(world)
    assert caught.value.code == "retry_delivered"
    assert world.core.session_status().state is SessionState.FAILED
    assert retry(world, redeliver=True).state is SessionState.READY


def test_a_run_failed_in_the_renaming_phase_needs_redeliver_when_the_server_has_the_file(world):
    """Every rename's reply was lost and the server could not say whether the file was in place:
    the run failed in phase renaming. Once the server answers, it has the file: --redeliver."""
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.outbound.lose_rename_reply_next = 3
    # Silent from the first rename on (before it, each try removes an earlier run's leftovers).
    world.outbound.on_upload = lambda name, data: setattr(world.outbound, "unreachable", True)
    world.core.start_session(world.clock.now())
    world.work()
    assert world.core.session_status().state is SessionState.FAILED
    assert world.core.session_status().phase is SessionPhase.RENAMING
    world.outbound.unreachable = False
    with pytest.raises(Conflict) as caught:
        retry(world)
    assert caught.value.code == "retry_delivered"


def test_a_failed_upload_that_never_reached_the_final_name_is_retried_without_redeliver(failed):
    assert failed.outbound.files == {}
    assert retry(failed).state is SessionState.READY


# --- retention -----------------------------------------------------------------------------


def test_retention_deletes_old_final_days_only_with_one_event_each(make_world):
    world = make_world(archive_keep_days=2)
    names = {}
    for day in ("2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26"):
        compact = day.replace("-", "")
        names[day] = "Letture{}083015123_9.txt".format(compact)
        world.inbound.files[names[day]] = VALID_SAMPLE.read_bytes()
        world.poll(day + "T10:00")
    for day, refused_uploads in (("2026-11-23", 3), ("2026-11-25", 0)):
        world.outbound.fail_next = refused_uploads
        world.clock.set(at(day + "T11:00"))
        world.core.start_session(world.clock.now())
        world.work()
    # 23rd: failed at the upload, its invoices never delivered, then closed by the operator
    # (final and settled: nobody needs it any more); 24th: still ready (not final); 25th: inside
    # the two days kept.
    assert world.core.session_status(dt.date(2026, 11, 23)).state is SessionState.FAILED
    world.core.close_session(world.clock.now(), actor="operator", day=dt.date(2026, 11, 23))
    assert world.core.session_status(dt.date(2026, 11, 23)).state is SessionState.CLOSED
    world.clock.set(at("2026-11-27T03:00"))
    report = world.core.clean_up(world.clock.now(), "system")
    assert (report.archived_deleted, report.exports_deleted) == (1, 1)
    assert sorted(world.archive.files) == [
        "2026-11-24/" + names["2026-11-24"],
        "2026-11-25/" + names["2026-11-25"],
        "2026-11-26/" + names["2026-11-26"],
    ]
    assert [day for day, _ in world.exports.files] == [dt.date(2026, 11, 25)]
    deleted = [e.kind.value for e in day_detail(world.store, dt.date(2026, 11, 23)).events if "deleted" in e.kind.value]
    assert deleted == ["file-deleted", "archive-deleted", "export-deleted"]
    # The lines stored from the deleted file go with it (the day's partitions, on PostgreSQL);
    # its counts and its exported invoices stay.
    assert sorted({s.day.isoformat() for s in world.store.data.lines}) == ["2026-11-24", "2026-11-25", "2026-11-26"]
    [archive_event] = [
        e for e in day_detail(world.store, dt.date(2026, 11, 23)).events if e.kind.value == "archive-deleted"
    ]
    assert archive_event.detail["lines_removed"] is True
    assert day_detail(world.store, dt.date(2026, 11, 23)).file.counts.stored > 0
    assert world.core.clean_up(world.clock.now(), "system").archived_deleted == 0, "each file is deleted once"
    with pytest.raises(NotFound):
        export_download(world.store, world.exports, dt.date(2026, 11, 23))


def test_retention_keeps_the_lines_of_a_failed_day_that_can_still_be_retried_and_started(make_world):
    """WAREHOUSE_ARCHIVE_KEEP_DAYS=2. The 26th fails at the upload (nothing delivered). On the 29th
    it is still in the page's "earlier" list (failed, within 30 days), so the 03:00 retention keeps
    its lines, archived file and export: ops retry it, the operator starts it and its invoices,
    never delivered, are shipped. (Review B, finding 1.)"""
    world = make_world(archive_keep_days=2)
    world.inbound.files[FAILED_FILE] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.core.start_session(world.clock.now())
    world.outbound.fail_next = 3
    world.work()
    assert world.core.session_status(DAY).state is SessionState.FAILED
    world.clock.set(at("2026-11-29T03:00"))
    assert [s.day for s in world.core.status(world.clock.now().date()).earlier] == [DAY]
    report = world.core.clean_up(world.clock.now(), "system")
    assert (report.archived_deleted, report.exports_deleted) == (0, 0)
    assert sorted(world.archive.files) == ["2026-11-26/" + FAILED_FILE]
    world.clock.set(at("2026-11-29T09:00"))
    world.core.retry_session(DAY, "the outbound server was down", "cli:ops", world.clock.now(), False)
    world.importer_confirms()
    world.core.start_session(world.clock.now(), day=DAY)
    world.work()
    after = world.core.session_status(DAY)
    assert after.state is SessionState.COMPLETED, after.detail
    assert {n for n, d in world.store.data.exported if d == DAY} == SHIPPED


def test_retention_removes_a_failed_day_once_it_is_out_of_the_earlier_list(make_world):
    """The same failed day, once older than the 30 days the page reaches, is settled for retention:
    its archived file and the lines stored from it are deleted."""
    world = make_world(archive_keep_days=2)
    world.inbound.files[FAILED_FILE] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.core.start_session(world.clock.now())
    world.outbound.fail_next = 3
    world.work()
    world.clock.set(at("2026-12-27T03:00"))
    assert world.core.status(world.clock.now().date()).earlier == []
    assert world.core.clean_up(world.clock.now(), "system").archived_deleted == 1
    assert world.archive.files == {}


def test_retention_removes_the_export_a_redelivered_day_kept_of_its_first_run(make_world):
    """The first run's file reached the consumer but its line never came (failed, delivery yes);
    ops redelivered it, and the retry kept the first run's export as NAME.run1 for the history.
    Once the day is older than WAREHOUSE_ARCHIVE_KEEP_DAYS, retention removes both exports: a kept
    run is no reason to keep a day's files for ever."""
    world = make_world(archive_keep_days=2)
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.core.start_session(world.clock.now())
    world.work()
    assert world.core.session_status(DAY).state is SessionState.FAILED
    world.core.retry_session(DAY, "the consumer lost the file", "cli:ops", world.clock.now(), True)
    world.importer_confirms()
    world.core.start_session(world.clock.now())
    world.work()
    assert world.core.session_status(DAY).state is SessionState.COMPLETED
    assert len([name for day, name in world.exports.files if day == DAY]) == 2
    world.clock.set(at("2026-11-29T03:00"))
    assert world.core.clean_up(world.clock.now(), "system").exports_deleted == 1
    assert world.exports.files == {}


class _RacingArchive:
    """The archive as two processes see it when the other one's clean-up runs while this one is
    between reading its candidates and deleting the first of them (web and runner both upkeep)."""

    def __init__(self, archive, other):
        self.archive, self.other, self.raced = archive, other, False

    def delete(self, path):
        if not self.raced:
            self.raced = True
            self.other()
        return self.archive.delete(path)

    def __getattr__(self, name):
        return getattr(self.archive, name)


def test_two_processes_cleaning_up_at_once_write_one_event_per_deletion(make_world):
    world = make_world(archive_keep_days=2)
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.importer_confirms()
    world.core.start_session(world.clock.now())
    world.work()
    world.clock.set(at("2026-11-29T03:00"))
    other = CleanUp(store=world.store, archive=world.archive, exports=world.exports, keep_days=2)
    this = CleanUp(
        store=world.store,
        archive=_RacingArchive(world.archive, lambda: other(world.clock.now(), "system")),
        exports=world.exports,
        keep_days=2,
    )
    this(world.clock.now(), "system")
    deleted = [e.kind.value for e in day_detail(world.store, DAY).events if e.kind.value.endswith("-deleted")]
    assert deleted.count("archive-deleted") == 1 and deleted.count("export-deleted") == 1
    assert world.archive.files == {} and world.exports.files == {}


def test_retention_zero_keeps_everything(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.clock.set(at("2027-11-26T10:00"))
    assert world.core.clean_up(world.clock.now(), "system").archived_deleted == 0


def test_a_resumed_export_says_so_in_the_timeline(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.importer_confirms()
    world.core.start_session(world.clock.now())
    world.store.die_during_export_after = 3
    with pytest.raises(WorkerKilled):
        world.work()
    world.work()
    progress = [e.detail for e in day_detail(world.store, DAY).events if e.kind.value == "session-progress"]
    assert progress == [
        {"file": EXPORT, "resumed_after": 3, "total": 6},
        {"file": EXPORT, "written": 6, "total": 6},
    ]


@pytest.mark.parametrize("limit", [0, -5, MAX_PAGE_SIZE + 1])
def test_a_page_of_no_days_or_too_many_is_refused_not_bent(world, limit):
    with pytest.raises(InvalidArgument) as caught:
        list_days(world.store, limit=limit)
    assert caught.value.code == "bad_limit"
    assert caught.value.values == {"lowest": 1, "highest": MAX_PAGE_SIZE}


@pytest.mark.parametrize("text", ["abc", "", "1.5", "0", "-5"])
def test_a_limit_that_is_not_a_whole_number_in_range_is_refused(text):
    with pytest.raises(InvalidArgument):
        page_limit(text)


def test_a_limit_in_range_is_taken():
    assert page_limit("1") == 1 and page_limit(" 60 ") == 60 and page_limit(str(MAX_PAGE_SIZE)) == MAX_PAGE_SIZE
