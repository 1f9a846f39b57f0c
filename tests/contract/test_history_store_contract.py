"""The store's Events and History roles (SPEC §7, §10): the same tests against the fake and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import psycopg
import pytest

from tests.conftest import SAMPLE_VIEW, at
from tests.contract.test_store_contract import insert, line, mail, record
from tests.fakes import FakeStore
from warehouse_core.audit import Event, EventKind
from warehouse_core.days import FileCounts
from warehouse_core.model import FileStatus, MailEvent, Problem, SessionState

DAY = dt.date(2026, 11, 26)


@pytest.fixture(params=["fake", "postgres"])
def store(request):
    if request.param == "fake":
        return FakeStore(invoice_view=SAMPLE_VIEW)
    return request.getfixturevalue("real_store")


def test_events_come_back_in_order_with_their_detail(store):
    with store.unit_of_work() as uow:
        uow.record_event(Event(DAY, EventKind.FILE_SEEN, at("2026-11-26T10:00"), "system", {"file": "a", "size": 3}))
        uow.record_event(Event(DAY, EventKind.SESSION_STARTED, at("2026-11-26T10:05"), "anna", {"from": "ready"}))
        uow.record_event(Event(DAY + dt.timedelta(days=1), EventKind.FILE_SEEN, at("2026-11-27T10:00")))
    with store.unit_of_work() as uow:
        events = uow.events_of_day(DAY)
    assert [(e.kind, e.actor, e.detail) for e in events] == [
        (EventKind.FILE_SEEN, "system", {"file": "a", "size": 3}),
        (EventKind.SESSION_STARTED, "anna", {"from": "ready"}),
    ]
    assert events[1].at == at("2026-11-26T10:05") and events[0].id < events[1].id


def test_an_event_belongs_to_its_transaction(store):
    with pytest.raises(RuntimeError):
        with store.unit_of_work() as uow:
            uow.record_event(Event(DAY, EventKind.SESSION_CLOSED, at("2026-11-26T11:00"), "anna"))
            raise RuntimeError("the change it reports failed")
    with store.unit_of_work() as uow:
        assert uow.events_of_day(DAY) == []


def test_the_event_table_is_append_only(real_store):
    with real_store.unit_of_work() as uow:
        uow.record_event(Event(DAY, EventKind.SESSION_CLOSED, at("2026-11-26T11:00"), "anna"))
    for statement in ("UPDATE event SET actor = 'someone else'", "DELETE FROM event"):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            with real_store.unit_of_work() as uow:
                uow.connection.execute(statement)


def test_days_summaries_and_files_read_what_was_stored(store):
    with store.unit_of_work() as uow:
        rejected = uow.record_file(
            replace(
                record("Letture20261126080000000_1.txt", FileStatus.IMPORTED, "cd" * 32),
                received_at=at("2026-11-26T08:00"),
            )
        )
        uow.set_file_outcome(rejected, FileStatus.REJECTED, (Problem(2, "bad"), Problem(3, "worse")))
        uow.record_problem_count(rejected, 250)
        imported = uow.record_file(replace(record(), received_at=at("2026-11-26T10:00")))
        insert(uow, imported, DAY, [line(1, "600000001"), line(2, "600000004")])
        uow.record_file_counts(imported, FileCounts(stored=2, ignored=1, not_found=1, valid=1))
        uow.open_session(DAY)
        uow.enqueue_mail(mail(MailEvent.IMPORT_SUMMARY))
        earlier = DAY - dt.timedelta(days=3)
        uow.enqueue_mail(replace(mail(MailEvent.NO_FILE), day=earlier))
        uow.record_event(Event(DAY - dt.timedelta(days=5), EventKind.FILE_INCOMPLETE, at("2026-11-21T10:00")))
    with store.unit_of_work() as uow:
        assert uow.history_days(None, 10) == [DAY, earlier, DAY - dt.timedelta(days=5)]
        assert uow.history_days(DAY, 1) == [earlier]
        [today, alert_day] = uow.day_summaries([DAY, earlier])
        files = uow.day_files(DAY)
    assert [f.name for f in today.files] == ["Letture20261126080000000_1.txt", "Letture20261126083015123_9.txt"]
    assert today.files[0].reasons == () and today.files[0].problem_count == 250
    assert today.file.counts == FileCounts(stored=2, ignored=1, not_found=1, valid=1)
    assert today.file.received_at == at("2026-11-26T10:00") and today.file.lines == 10
    assert today.session.state is SessionState.READY and (today.mails_queued, today.mails_sent) == (1, 0)
    assert alert_day.no_file_alert and alert_day.session is None and alert_day.state == "no-file"
    assert files[0].reasons == (Problem(2, "bad"), Problem(3, "worse"))


def test_metrics_snapshot_and_checks(store):
    with store.unit_of_work() as uow:
        file_id = uow.record_file(replace(record(), received_at=at("2026-11-26T10:00")))
        uow.record_file_counts(file_id, FileCounts(stored=8, ignored=2, not_found=2, valid=5))
        uow.open_session(DAY)
        uow.start_session(DAY, at("2026-11-26T10:05"))
        uow.finish_session(DAY, SessionState.COMPLETED, at("2026-11-26T10:07"), None)
        uow.enqueue_mail(mail())
        uow.record_poll(at("2026-11-26T10:00"), ok=True)
        uow.record_poll(at("2026-11-26T10:30"), ok=False)
        uow.record_check("smtp", at("2026-11-26T10:30"), False, "refused")
        uow.record_check("database", at("2026-11-26T10:30"), True, "ok")
    with store.unit_of_work() as uow:
        snapshot = uow.metrics_snapshot(DAY)
        assert uow.last_check("smtp") == at("2026-11-26T10:30") and uow.last_check("remote_log") is None
    assert snapshot.last_import_at == at("2026-11-26T10:00")
    assert snapshot.poll_last_success_at == at("2026-11-26T10:00") and snapshot.poll_failures == 1
    assert snapshot.lines_imported == {"valid": 5, "not_found": 2, "already_exported": 1}
    assert snapshot.today_state is SessionState.COMPLETED and snapshot.last_session_duration == 120
    assert snapshot.outbox_pending == 1
    assert snapshot.dependencies == {"smtp": False, "database": True}


def test_the_last_success_of_a_check_outlives_the_failures_after_it(store):
    with store.unit_of_work() as uow:
        uow.record_check("cleanup", at("2026-11-26T00:01"), True, "1 archived files and 0 exports deleted")
        uow.record_check("cleanup", at("2026-11-27T00:01"), False, "Permission denied")
    with store.unit_of_work() as uow:
        assert uow.last_check("cleanup") == at("2026-11-27T00:01")
        assert uow.last_success("cleanup") == at("2026-11-26T00:01")
        assert uow.last_success("smtp") is None


def test_retention_candidates_are_final_days_before_the_cutoff_not_yet_deleted(store):
    days = [DAY - dt.timedelta(days=n) for n in (3, 2, 1)]
    with store.unit_of_work() as uow:
        for number, day in enumerate(days):
            name = "Letture{}083015123_9.txt".format(day.strftime("%Y%m%d"))
            uow.record_file(replace(record(name, day=day, sha=str(number) * 64), received_at=at("2026-11-20T10:00")))
            uow.open_session(day)
        uow.start_session(days[0], at("2026-11-23T10:00"))
        uow.update_session(days[0], export_file="Spedizioni_a.txt")
        uow.finish_session(days[0], SessionState.FAILED, at("2026-11-23T10:01"), "broken")
        # days[1] stays ready (not final); days[2] is the cut-off day itself.
    with store.unit_of_work() as uow:
        files = uow.archived_files_before(days[2])
        assert [(day, path) for _, day, path in files] == [(days[0], "2026-11-26/Letture20261123083015123_9.txt")]
        assert uow.exports_before(days[2]) == [(days[0], "Spedizioni_a.txt")]
        assert uow.mark_archive_deleted(files[0][0], at("2026-11-26T03:00"))
        assert uow.mark_export_deleted(days[0], at("2026-11-26T03:00"))
    with store.unit_of_work() as uow:
        assert uow.archived_files_before(days[2]) == [] and uow.exports_before(days[2]) == []
        # A second clean-up that read the same candidates before the first committed: no claim.
        assert not uow.mark_archive_deleted(files[0][0], at("2026-11-26T03:01"))
        assert not uow.mark_export_deleted(days[0], at("2026-11-26T03:01"))


def test_retry_turns_only_a_failed_session_back_to_ready(store):
    with store.unit_of_work() as uow:
        uow.open_session(DAY)
        assert not uow.retry_session(DAY)
        uow.start_session(DAY, at("2026-11-26T10:00"))
        uow.update_session(DAY, total=6, processed=6, export_file="Spedizioni20261126_6.txt")
        uow.finish_session(DAY, SessionState.FAILED, at("2026-11-26T10:01"), "upload failed")
        assert uow.retry_session(DAY)
        session = uow.session(DAY)
        assert not uow.retry_session(DAY)
    assert session.state is SessionState.READY
    assert (session.total, session.processed, session.export_file, session.detail, session.started_at) == (
        0,
        0,
        None,
        None,
        None,
    )


def test_a_day_retried_after_the_retention_deleted_its_export_has_its_new_export_deleted_in_turn(store):
    """The retention deleted a failed day's export; ops retried the day and it completed with a new
    export: that one is a candidate again (else it would stay on disk forever)."""
    with store.unit_of_work() as uow:
        uow.open_session(DAY)
        uow.start_session(DAY, at("2026-11-26T10:00"))
        uow.update_session(DAY, export_file="Spedizioni20261126_6.txt")
        uow.finish_session(DAY, SessionState.FAILED, at("2026-11-26T10:01"), "upload failed")
    cutoff = DAY + dt.timedelta(days=40)
    with store.unit_of_work() as uow:
        assert uow.exports_before(cutoff) == [(DAY, "Spedizioni20261126_6.txt")]
        assert uow.mark_export_deleted(DAY, at("2027-01-05T03:00"))
    with store.unit_of_work() as uow:
        assert uow.retry_session(DAY)
        uow.start_session(DAY, at("2027-01-05T10:00"))
        uow.update_session(DAY, export_file="Spedizioni20261126_5.txt")
        uow.finish_session(DAY, SessionState.COMPLETED, at("2027-01-05T10:05"), None)
    with store.unit_of_work() as uow:
        assert uow.exports_before(cutoff) == [(DAY, "Spedizioni20261126_5.txt")]


def test_the_outbox_age_is_measured_from_when_the_service_queued_the_mail(store):
    """The service's clock, not the database's: /metrics subtracts it from the service's now, so a
    clock the tests inject (or a database host whose clock is off) gives the same age everywhere."""
    with store.unit_of_work() as uow:
        uow.enqueue_mail(mail(), queued_at=at("2026-11-26T10:00"))
        uow.enqueue_mail(mail(), queued_at=at("2026-11-26T10:05"))
    with store.unit_of_work() as uow:
        assert uow.metrics_snapshot(DAY).outbox_oldest_pending_at == at("2026-11-26T10:00")
