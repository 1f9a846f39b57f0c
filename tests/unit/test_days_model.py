"""The day in hindsight (SPEC §7): the row's state, and whether the day reconciles."""

from __future__ import annotations

import datetime as dt

from tests.conftest import at
from warehouse_core.adapters.jinja_mail import JinjaMailRenderer
from warehouse_core.days import DayFile, DaySummary, FileCounts
from warehouse_core.model import FileSource, FileStatus, MailEvent, SessionState, WorkSession

DAY = dt.date(2026, 11, 26)


SAMPLE_COUNTS = FileCounts(stored=8, ignored=2, not_found=2, valid=6)


def sample_file(status=FileStatus.IMPORTED, counts=SAMPLE_COUNTS, lines=10):
    return DayFile(
        id=1,
        name="Letture20261126083015123_9.txt",
        source=FileSource.FTP,
        status=status,
        received_at=at("2026-11-26T10:00"),
        lines=lines,
        counts=counts if status is FileStatus.IMPORTED else None,
    )


def session(state, total=6, processed=6, started=True):
    return WorkSession(
        day=DAY,
        state=state,
        total=total,
        processed=processed,
        started_at=at("2026-11-26T10:05") if started else None,
        finished_at=at("2026-11-26T10:07") if state in (SessionState.COMPLETED, SessionState.FAILED) else None,
        export_file="Spedizioni20261126_6.txt" if started else None,
    )


def test_a_completed_day_reconciles_file_to_confirmation():
    day = DaySummary(DAY, files=(sample_file(),), session=session(SessionState.COMPLETED), mails_sent=2, mails_queued=2)
    check = day.reconciliation()
    assert check.reconciled is True
    assert check.counts == {"file_lines": 10, "stored": 8, "ignored": 2, "valid": 6, "exported": 6, "confirmed": 6}
    row = day.as_dict()
    assert row["state"] == "completed" and row["confirmed_at"] == at("2026-11-26T10:07").isoformat()
    assert (row["stored"], row["ignored"], row["not_found"], row["mails"]) == (8, 2, 2, 2)
    assert row["reconciled"] is True


def test_a_failed_day_does_not_reconcile_and_says_which_count_differs():
    day = DaySummary(DAY, files=(sample_file(),), session=session(SessionState.FAILED))
    check = day.reconciliation()
    assert check.reconciled is False and check.differences == ("confirmed",)
    assert check.counts["exported"] == 6 and check.counts["confirmed"] is None


def test_a_file_whose_counts_do_not_add_up_is_flagged():
    counts = FileCounts(stored=8, ignored=1, not_found=0, valid=8)
    day = DaySummary(DAY, files=(sample_file(counts=counts),), session=session(SessionState.READY, 0, 0, started=False))
    check = day.reconciliation()
    assert check.reconciled is False and check.differences == ("file_lines",)


def test_a_day_closed_before_its_start_exported_nothing_of_its_valid_lines():
    day = DaySummary(DAY, files=(sample_file(),), session=session(SessionState.CLOSED, 0, 0, started=False))
    check = day.reconciliation()
    assert check.reconciled is False and check.differences == ("exported", "confirmed")
    assert (check.counts["valid"], check.counts["exported"]) == (6, 0)


def test_a_day_in_progress_reconciles_its_file_only_and_one_without_data_has_nothing_to_check():
    assert (
        DaySummary(DAY, files=(sample_file(),), session=session(SessionState.RUNNING, 6, 3)).reconciliation().reconciled
    )
    rejected = DaySummary(DAY, files=(sample_file(FileStatus.REJECTED),))
    assert rejected.state == "rejected" and rejected.reconciliation().reconciled is None
    assert DaySummary(DAY, no_file_alert=True).state == "no-file"
    # Imported before the history existed: the counts were never stored.
    old = DaySummary(DAY, files=(sample_file(counts=None),), session=session(SessionState.READY, 0, 0, started=False))
    assert old.reconciliation().reconciled is None


def test_the_session_retry_mail_names_who_and_why():
    subject, text, html = JinjaMailRenderer().render(
        MailEvent.SESSION_RETRY,
        {
            "day": DAY,
            "event": "session-retry",
            "actor": "cli:ops",
            "reason": "outbound FTP was down 10 minutes",
            "previous_detail": "the upload failed after 3 tries",
            "failed_at": at("2026-11-26T10:07"),
            "redeliver": True,
            "export_file": "Spedizioni20261126_6.txt",
        },
    )
    assert "2026-11-26" in subject and "cli:ops" in subject
    for body in (text, html):
        assert "cli:ops" in body and "outbound FTP was down 10 minutes" in body
        assert "the upload failed after 3 tries" in body and "Spedizioni20261126_6.txt" in body
