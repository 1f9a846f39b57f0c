"""Every rule of IngestDailyFile (SPEC §4), through bootstrap() with in-memory fakes."""

from __future__ import annotations

import datetime as dt
import tracemalloc
from contextlib import contextmanager

import pytest

from tests.conftest import INCOMPLETE_SAMPLE, MALFORMED_SAMPLE, SAMPLE_VIEW, VALID_SAMPLE, at
from tests.fakes import FakeArchive, FakeClock, FakeInboundConnection, FakeMailer, FakeStore, WorkerKilled
from warehouse_core.adapters.local_archive import LocalArchive
from warehouse_core.bootstrap import bootstrap
from warehouse_core.model import FileStatus, InvoiceStatus, RemoteFile, SessionState

VALID = VALID_SAMPLE.name
MALFORMED = MALFORMED_SAMPLE.name
INCOMPLETE = INCOMPLETE_SAMPLE.name


def test_valid_file_is_archived_recorded_imported_then_deleted(world):
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    report = world.poll("2026-11-26T10:00")
    assert report.imported == [VALID] and report.deleted == [VALID]
    assert VALID not in world.inbound.files
    assert world.archive.files["2026-11-26/" + VALID] == VALID_SAMPLE.read_bytes()
    [record] = world.store.data.files
    assert record.status is FileStatus.IMPORTED and record.actual_lines == 10 and record.declared_count == 9
    lines = world.store.stored_lines()
    assert len(lines) == 8
    assert {s.line.invoice_number for s in lines if s.invoice_status is InvoiceStatus.NOT_FOUND} == {
        "600000004",
        "600000099",
    }
    assert sorted(world.store.data.categories) == [
        "bevande",
        "carne",
        "frutta",
        "frutta secca",
        "latticini",
        "pane",
        "pesce",
        "surgelati",
        "verdura",
    ]
    [mail] = world.store.mails()
    assert mail.event.value == "import-summary"
    assert "600000004" in mail.text and "600000099" in mail.text and "600000099" in mail.html


def test_nothing_is_deleted_before_the_file_is_archived_and_recorded(world):
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    seen_at_delete = []

    def check_before_delete(name):
        recorded = [record.name for record in world.store.data.files]
        seen_at_delete.append((name, "2026-11-26/" + name in world.archive.files, recorded))

    world.inbound.on_delete = check_before_delete
    world.poll("2026-11-26T10:00")
    assert seen_at_delete == [(VALID, True, [VALID])]


def test_malformed_file_is_rejected_whole_kept_and_mailed(world):
    world.inbound.files[MALFORMED] = MALFORMED_SAMPLE.read_bytes()
    report = world.poll("2026-11-26T10:00")
    assert report.rejected == [MALFORMED]
    assert world.store.stored_lines() == [] and world.store.data.categories == {}
    [record] = world.store.data.files
    assert record.status is FileStatus.REJECTED
    assert [p.line for p in record.reasons] == [2, 3, 4, 5]
    assert "2026-11-26/" + MALFORMED in world.archive.files
    [mail] = world.store.mails()
    assert mail.event.value == "import-failed"
    for needle in ("line 2:", "line 3:", "line 4:", "line 5:", "'forty'", "'70,7'"):
        assert needle in mail.text
    assert MALFORMED not in world.inbound.files


def test_incomplete_file_stays_on_the_server_and_is_retried(world):
    world.inbound.files[INCOMPLETE] = INCOMPLETE_SAMPLE.read_bytes()
    report = world.poll("2026-11-26T10:00")
    assert report.incomplete == [INCOMPLETE] and report.deleted == []
    assert INCOMPLETE in world.inbound.files
    assert world.archive.files == {} and world.store.data.files == []
    world.poll("2026-11-26T10:30")
    assert world.inbound.downloads == [INCOMPLETE, INCOMPLETE]


def test_a_file_that_grows_during_download_is_not_taken(world):
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    world.inbound.grow_during_download = b"\n600000009|1|x|1"
    report = world.poll("2026-11-26T10:00")
    assert report.incomplete == [VALID] and VALID in world.inbound.files and world.store.data.files == []


def test_a_short_download_is_never_taken_for_success(world):
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    world.inbound.cut_download_after = 100
    report = world.poll("2026-11-26T10:00")
    assert report.incomplete == [VALID] and report.deleted == [] and world.store.data.files == []


def test_a_refused_download_deletes_nothing_and_the_next_poll_imports(world):
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    world.inbound.failing.add("RETR")
    report = world.poll("2026-11-26T10:00")
    assert report.imported == [] and VALID in world.inbound.files
    world.inbound.failing.clear()
    assert world.poll("2026-11-26T10:30").imported == [VALID]


def test_failed_delete_is_retried_without_a_second_import(world):
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    world.inbound.failing.add("DELE")
    report = world.poll("2026-11-26T10:00")
    assert report.imported == [VALID] and report.deleted == [] and VALID in world.inbound.files
    world.inbound.failing.clear()
    report = world.poll("2026-11-26T10:30")
    assert report.imported == [] and report.deleted == [VALID]
    assert len(world.store.data.files) == 1 and len(world.store.stored_lines()) == 8
    assert [m.event.value for m in world.store.mails()] == ["import-summary"]


def test_a_connection_dropped_while_the_file_was_imported_is_logged_on_again_for_the_delete(world):
    # The import takes minutes for a big file; the server's idle timeout may end the connection meanwhile.
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    world.inbound.drop_before.add("DELE")
    report = world.poll("2026-11-26T10:00")
    assert report.imported == [VALID] and report.deleted == [VALID] and VALID not in world.inbound.files
    assert world.inbound.connections == 2


def test_second_valid_file_for_a_day_with_data_is_archived_and_mailed(world):
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    second = "Letture20261126150000000_9.txt"
    world.inbound.files[second] = VALID_SAMPLE.read_bytes().replace(b"600000008", b"600000009")
    report = world.poll("2026-11-26T15:00")
    assert report.extra == [second] and second not in world.inbound.files
    assert "2026-11-26/" + second in world.archive.files
    assert len(world.store.stored_lines()) == 8
    assert [m.event.value for m in world.store.mails()] == ["import-summary", "extra-file"]


def test_files_of_other_days_and_foreign_names_stay_untouched(world):
    other_day = "Letture20261125083015123_9.txt"
    foreign = ["notes.txt", "Letture20261126083015123_9.csv", "../Letture20261126083015123_9.txt"]
    for name in [other_day] + foreign:
        world.inbound.files[name] = VALID_SAMPLE.read_bytes()
    report = world.poll("2026-11-26T10:00")
    assert report.other_days == [other_day] and report.imported == []
    assert sorted(world.inbound.files) == sorted([other_day] + foreign)
    assert world.inbound.downloads == []


def test_no_file_alert_once_at_the_first_poll_at_or_after_19(world):
    world.inbound.files["Letture20261125083015123_9.txt"] = VALID_SAMPLE.read_bytes()
    world.inbound.files[INCOMPLETE] = INCOMPLETE_SAMPLE.read_bytes()
    assert world.poll("2026-11-26T18:30").no_file_alert is False
    assert world.poll("2026-11-26T19:00").no_file_alert is True
    assert world.poll("2026-11-26T19:30").no_file_alert is False
    assert world.poll("2026-11-26T20:00").no_file_alert is False
    [mail] = world.store.mails("no-file")
    assert "Letture20261125083015123_9.txt" in mail.text and INCOMPLETE in mail.text


def test_no_alert_when_the_day_has_data(world):
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    assert world.poll("2026-11-26T19:00").no_file_alert is False
    assert world.store.mails("no-file") == []


def test_no_file_alert_also_when_the_server_cannot_be_reached(world):
    world.inbound.failing.add("LOGIN")
    assert world.poll("2026-11-26T19:00").no_file_alert is True
    [mail] = world.store.mails("no-file")
    assert "could not be read" in mail.text


def test_outside_the_window_or_on_a_weekend_nothing_happens(world):
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    assert world.poll("2026-11-26T07:30").skipped
    assert world.poll("2026-11-26T20:30").skipped
    assert world.poll("2026-11-28T10:00").skipped  # a Saturday
    assert world.poll("2026-11-28T19:00").skipped
    assert world.inbound.connections == 0 and world.store.data.outbox == []


def test_only_one_poll_at_a_time(world):
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    with world.store.exclusive_poll() as acquired:
        assert acquired
        report = world.poll("2026-11-26T10:00")
    assert report.skipped == "another poll is running" and VALID in world.inbound.files


def test_the_no_file_alert_does_not_wait_for_the_poll_lock(world):
    """A poll lock held by a poll that hangs (or orphaned by a network blip until the server ends its
    connection) never holds up the 19:00 alert; the outbox's once-key still sends it once."""
    with world.store.exclusive_poll() as acquired:
        assert acquired
        report = world.poll("2026-11-26T19:00")
        assert report.skipped == "another poll is running"
        assert report.no_file_alert is True
        assert world.poll("2026-11-26T19:30").no_file_alert is False
    assert world.poll("2026-11-26T20:00").no_file_alert is False
    assert len(world.store.mails("no-file")) == 1


def test_no_file_alert_is_not_sent_while_another_process_is_importing_todays_file(world, monkeypatch):
    """Review B, finding 2: 19:00, two processes poll. One wins the poll lock and downloads the
    day's file (a big file takes minutes); the other skips for the lock and, finding no data yet,
    queued "no file for 2026-11-26" for a file that was being imported. A poll that has just taken
    the lock is waited for: the alert check is deferred to it (it checks the alert when it ends)."""
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    other_process = []
    download = FakeInboundConnection.download

    def slow_download(self, name, write):
        if not other_process:  # the other process polls at 19:00 while this one downloads
            other_process.append(world.core.ingest_daily_file(world.clock.now()))
        return download(self, name, write)

    monkeypatch.setattr(FakeInboundConnection, "download", slow_download)
    report = world.poll("2026-11-26T19:00")
    assert report.imported == [VALID]
    assert other_process[0].skipped == "another poll is running" and other_process[0].alert_deferred
    assert world.store.mails("no-file") == [], "a no-file alert for a file that was being imported"


def test_the_no_file_alert_waits_for_another_processs_poll_five_minutes_at_most(world):
    """A poll of another process that took the lock at 19:00 and hangs: the alert check defers
    to it until 19:05, then is sent without it (it is not held up by a stuck poll)."""
    world.clock.set(at("2026-11-26T19:00"))
    with world.store.exclusive_poll():
        assert world.poll("2026-11-26T19:00").alert_deferred
        world.clock.set(at("2026-11-26T19:04:59"))
        assert world.core.ingest_daily_file.check_alert(world.clock.now(), at("2026-11-26T19:00")).alert_deferred
        assert world.store.mails("no-file") == []
        world.clock.set(at("2026-11-26T19:05"))
        report = world.core.ingest_daily_file.check_alert(world.clock.now(), at("2026-11-26T19:00"))
        assert not report.alert_deferred and report.no_file_alert
    assert len(world.store.mails("no-file")) == 1


def test_a_poll_that_skips_for_the_lock_before_the_alert_time_sends_no_alert(world):
    with world.store.exclusive_poll():
        assert world.poll("2026-11-26T18:30").no_file_alert is False
    assert world.store.mails("no-file") == []


def test_the_same_file_reappearing_is_deleted_without_a_second_import(world):
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    report = world.poll("2026-11-26T10:30")
    assert report.deleted == [VALID] and report.imported == [] and report.extra == []
    assert len(world.store.data.files) == 1


def test_a_crash_after_archiving_but_before_recording_imports_once_later(world):
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    world.store.crash_on_record_file = WorkerKilled("power cut")  # the process dies: nothing catches it
    with pytest.raises(WorkerKilled, match="power cut"):
        world.poll("2026-11-26T10:00")
    assert VALID in world.inbound.files and world.store.data.files == []
    world.poll("2026-11-26T10:30")
    assert len(world.store.data.files) == 1 and len(world.store.stored_lines()) == 8
    assert list(world.archive.files) == ["2026-11-26/" + VALID]


def test_a_file_whose_lines_are_all_ignored_is_imported_and_start_fails_at_once(world):
    # SPEC §5: valid (the day has data, with 0 lines); Start then fails with the alert.
    name = "Letture20261126090000000_1.txt"
    world.inbound.files[name] = b"500000001|1|a|1\nX|y"
    report = world.poll("2026-11-26T10:00")
    assert report.imported == [name] and report.deleted == [name] and report.rejected == []
    assert world.store.stored_lines() == []
    [summary] = world.store.mails("import-summary")
    assert world.store.mails("import-failed") == []
    assert world.core.session_status().state is SessionState.READY
    world.core.start_session(world.clock.now())
    world.core.run_session.run_pending(world.clock.wait)
    status = world.core.session_status()
    assert status.state is SessionState.FAILED and "no records to generate" in status.detail
    [alert] = world.store.mails("session-failed")
    assert "no records to generate" in alert.text
    assert world.outbound.files == {}


# --- a server without SIZE (SPEC §4): the listing's size, or two downloads agreeing, decide -----


def test_without_size_the_listings_size_decides(world):
    world.inbound.size_command = False
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    report = world.poll("2026-11-26T10:00")
    assert report.imported == [VALID] and report.incomplete == []
    assert world.inbound.downloads == [VALID]


def test_without_size_a_download_that_disagrees_with_the_listing_is_incomplete(world):
    world.inbound.size_command = False
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    world.inbound.cut_download_after = 100
    report = world.poll("2026-11-26T10:00")
    assert report.incomplete == [VALID] and VALID in world.inbound.files and world.store.data.files == []


def test_without_size_or_listed_sizes_two_downloads_that_agree_decide(world):
    world.inbound.size_command = False
    world.inbound.listing_sizes = False
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    report = world.poll("2026-11-26T10:00")
    assert report.imported == [VALID] and report.deleted == [VALID]
    assert world.inbound.downloads == [VALID, VALID]
    assert world.archive.files["2026-11-26/" + VALID] == VALID_SAMPLE.read_bytes()


def test_without_size_or_listed_sizes_a_file_that_changes_between_downloads_waits(world):
    world.inbound.size_command = False
    world.inbound.listing_sizes = False
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    world.inbound.grow_during_download = b"\n600000001|1|x|1"
    report = world.poll("2026-11-26T10:00")
    assert report.incomplete == [VALID] and report.imported == [] and VALID in world.inbound.files
    world.inbound.grow_during_download = b""
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()  # the writer finished
    assert world.poll("2026-11-26T10:30").imported == [VALID]


class StreamingInbound:
    """One file of ``lines`` generated lines, sent in 64 KB blocks as an FTP download would be."""

    LINE = b"600000001|1|frutta|1.00\n"

    def __init__(self, name: str, lines: int) -> None:
        self.name = name
        self.lines = lines
        self.sent = 0

    @contextmanager
    def connect(self):
        yield self

    def describe(self) -> str:
        return "streaming://inbound"

    def list_files(self):
        return [RemoteFile(name=self.name, size=self.size(self.name))]

    def size(self, name):
        return len(self.LINE) * self.lines

    def download(self, name, write):
        block = self.LINE * (64 * 1024 // len(self.LINE))
        whole, rest = divmod(self.lines, 64 * 1024 // len(self.LINE))
        for _ in range(whole):
            write(block)
        write(self.LINE * rest)
        self.sent = len(self.LINE) * self.lines
        return self.sent

    def delete(self, name):
        raise AssertionError("an incomplete file is never deleted")


def test_the_download_is_hashed_and_counted_as_it_arrives_in_flat_memory(make_settings, tmp_path):
    lines = 2_000_000  # 48 MB; its name declares one line more, so it is left as incomplete
    name = "Letture20261126083015123_{}.txt".format(lines)
    inbound = StreamingInbound(name, lines)
    core = bootstrap(
        make_settings(),
        store=FakeStore(invoice_view=SAMPLE_VIEW),
        inbound=inbound,
        archive=LocalArchive(tmp_path),
        mailer=FakeMailer(),
        clock=FakeClock(at("2026-11-26T10:00")),
    )
    tracemalloc.start()
    try:
        report = core.ingest_daily_file(at("2026-11-26T10:00"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.incomplete == [name] and inbound.sent == len(StreamingInbound.LINE) * lines
    assert peak < 2 * 1024 * 1024
    assert list((tmp_path / "incoming").glob("*.part")) == []  # the temporary copy is gone


@pytest.mark.parametrize("pretend_at", ["2026-11-26T19:30", "2026-11-20T10:00"])
def test_a_pretend_poll_leaves_the_poll_metrics_as_the_real_polls_left_them(world, pretend_at):
    """`poll --at` rehearses a moment with every rule; it did not run then, so it records no poll:
    the last successful poll and the failure count stay those of the polls that ran at their time."""
    world.core.ingest_daily_file(at("2026-11-26T10:00"))
    before = world.core.metrics_snapshot(dt.date(2026, 11, 26))
    assert before.poll_last_success_at == at("2026-11-26T10:00")
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    assert world.core.ingest_daily_file(at(pretend_at), pretend=True).server_error is None
    world.inbound.failing.add("LOGIN")
    assert world.core.ingest_daily_file(at(pretend_at), pretend=True).server_error is not None
    after = world.core.metrics_snapshot(dt.date(2026, 11, 26))
    assert (after.poll_last_success_at, after.poll_failures) == (before.poll_last_success_at, before.poll_failures)


def test_each_poll_clears_the_partial_downloads_a_killed_poll_left_under_the_poll_lock(world):
    world.archive.partial_downloads.append("download-killed.part")
    world.inbound.files[VALID] = VALID_SAMPLE.read_bytes()
    report = world.core.ingest_daily_file(at("2026-11-26T10:00"))
    assert world.archive.partial_downloads == []
    assert report.imported == [VALID]  # and the poll went on to import


def test_a_poll_that_another_process_holds_the_lock_for_clears_nothing(world):
    world.archive.partial_downloads.append("download-being-written.part")
    with world.store.exclusive_poll():
        report = world.core.ingest_daily_file(at("2026-11-26T10:00"))
        assert report.skipped == "another poll is running"
        assert world.core.ingest_daily_file.clear_stale_downloads() == []
    assert world.archive.partial_downloads == ["download-being-written.part"]


def test_a_starting_service_clears_what_a_killed_poll_left(make_settings):
    archive = FakeArchive()
    archive.partial_downloads.append("tmpold.part")
    bootstrap(
        make_settings(),
        store=FakeStore(invoice_view=SAMPLE_VIEW),
        archive=archive,
        clock=FakeClock(at("2026-11-26T10:00")),
    )
    assert archive.partial_downloads == []
