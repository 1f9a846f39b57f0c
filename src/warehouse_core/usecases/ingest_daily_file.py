"""IngestDailyFile: one poll of the inbound FTP server.

The order of every step is what keeps data safe: download to a temporary file, check the size
and the N + 1 line count, fsync and move into the archive, record it in the database, and only
then delete it from the server. A crash between any two steps leaves the file on the server or
recorded, and the next poll finishes the work without importing twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Dict, List, Optional

from warehouse_core.audit import SYSTEM, Event, EventKind
from warehouse_core.errors import TransferError, one_line
from warehouse_core.model import FileSource, FileStatus, InboundFileName, MailEvent, PollReport, RemoteFile
from warehouse_core.parsing import FactsCounter, FileFacts
from warehouse_core.ports import Archive, InboundConnection, InboundFiles, MailRenderer, Store, UnitOfWork
from warehouse_core.usecases.importing import ReceivedFile, import_received_file
from warehouse_core.usecases.mails import compose, queue_mail
from warehouse_core.usecases.schedule import PollSchedule

log = logging.getLogger(__name__)

# How long another process's poll may hold the poll lock before the no-file alert stops waiting for
# it: a poll downloading a big file takes a few minutes; one holding it longer hangs.
POLL_HELD_LONGEST = dt.timedelta(minutes=5)


class IngestDailyFile:
    def __init__(
        self,
        *,
        store: Store,
        inbound: InboundFiles,
        archive: Archive,
        renderer: MailRenderer,
        schedule: PollSchedule,
    ) -> None:
        self.store = store
        self.inbound = inbound
        self.archive = archive
        self.renderer = renderer
        self.schedule = schedule
        self.now = dt.datetime.min
        self.actor = SYSTEM

    def __call__(
        self,
        now: dt.datetime,
        actor: str = SYSTEM,
        *,
        any_time: bool = False,
        pretend: bool = False,
        due_at: Optional[dt.datetime] = None,
    ) -> PollReport:
        """One poll as if at ``now``; ``actor`` is who asked (the scheduler, or ops on the command line).

        ``any_time``: poll whatever the window and days (ops polling now for a late file); the
        no-file alert still follows its rule at ``now``.

        ``pretend``: ``now`` is not the time it runs (``poll --at``). Such a poll records no poll
        for the metrics: the last successful poll and the failures are those of the polls that
        ran at their time, which the alert on warehouse_poll_last_success_timestamp_seconds watches
        (recorded at the pretend time it would move hours ahead, or days back).

        ``due_at``: the time the scheduler owed this poll, when it runs late: the no-file alert
        is due as it was then (a window that shut at the alert time does not drop it)."""
        report = PollReport(at=now)
        if not any_time and not self.schedule.in_window(now):
            report.skipped = "outside the poll window and days"
            return report
        with self.store.exclusive_poll() as acquired:
            if acquired:
                # Safe on the shared instance: only the holder of the poll lock gets here.
                self.now, self.actor = now, actor
                self._clear_partial_files()
                report.server_error = self._poll_server(now.date(), report)
                if not pretend:
                    with self.store.unit_of_work() as uow:
                        uow.record_poll(now, ok=report.server_error is None)
            else:
                report.skipped = "another poll is running"
                log.info("poll skipped: another process is polling")
            self._check_alert(acquired, now, actor, report, due_at)
        if acquired:
            log.info(report.describe())
        return report

    def check_alert(self, now: dt.datetime, due_at: dt.datetime, actor: str = SYSTEM) -> PollReport:
        """The no-file alert check alone, for a scheduler whose check at ``due_at`` was deferred to
        a poll of another process (``alert_deferred``): run at its next ticks until it is not
        deferred. Due as it was at ``due_at``: a window that shut at the alert time meanwhile, or
        a poll that checked with its own earlier time, never drops the alert."""
        report = PollReport(at=now, skipped="the no-file alert check only")
        with self.store.exclusive_poll() as acquired:
            self._check_alert(acquired, now, actor, report, due_at)
        return report

    def _check_alert(
        self, acquired: bool, now: dt.datetime, actor: str, report: PollReport, due_at: Optional[dt.datetime] = None
    ) -> None:
        """Under the poll lock when this process holds it: no import runs then. When another
        process's poll holds it and took it less than POLL_HELD_LONGEST ago, that poll may be
        importing today's file right now, and it checks the alert itself when it ends: the check
        is deferred (the scheduler asks again at its next ticks). A poll holding the lock longer
        hangs, and a lock orphaned by a vanished process goes within a minute (the server ends its
        connection): neither holds the alert up for longer. The outbox's once-key sends it once."""
        if not self.schedule.alert_due(due_at or now) or (due_at is not None and due_at.date() != now.date()):
            return
        if not acquired:
            held = self.store.poll_lock_held_for()
            if held is not None and held < POLL_HELD_LONGEST:
                report.alert_deferred = True
                log.info(
                    "the no-file alert check waits for the poll another process started %ss ago",
                    int(held.total_seconds()),
                )
                return
        self._alert_if_no_file(now.date(), report, report.server_error, now, actor)

    def clear_stale_downloads(self) -> List[str]:
        """At start: remove what a killed poll left in the archive's incoming folder, unless a poll
        (of another process) is running, whose download is not stale; the names removed."""
        with self.store.exclusive_poll() as acquired:
            return self._clear_partial_files() if acquired else []

    def _clear_partial_files(self) -> List[str]:
        """Only under the poll lock: then no download is being written."""
        removed = self.archive.clear_partial_files()
        for name in removed:
            log.warning("removed a partial download or upload that did not finish: incoming/%s", name)
        return removed

    def _poll_server(self, today: dt.date, report: PollReport) -> Optional[str]:
        try:
            with self.inbound.connect() as connection:
                listing = connection.list_files()
                todays = self._todays_files(listing, today, report)
                for remote in todays:
                    self._take_guarded(connection, remote, today, report)
        except TransferError as error:
            log.error("inbound server %s: %s", self.inbound.describe(), error)
            return str(error)
        except Exception as error:  # a bug in the listing: the alert check below still runs
            problem = "the poll: {}".format(one_line(error))
            log.exception("%s (%s)", problem, self.inbound.describe())
            report.failed.append(problem)
        return None

    def _take_guarded(
        self, connection: InboundConnection, remote: RemoteFile, today: dt.date, report: PollReport
    ) -> None:
        """An unexpected error (a bug, a broken view, a full disk) ends the work on this file only:
        it stays on the server for the next poll, and the no-file alert names the error."""
        try:
            self._take(connection, remote, today, report)
        except TransferError:
            raise
        except Exception as error:
            problem = "{}: {}".format(remote.name, one_line(error))
            log.exception("%s; the file stays on the server for the next poll", problem)
            report.failed.append(problem)

    def _todays_files(self, listing: List[RemoteFile], today: dt.date, report: PollReport) -> List[RemoteFile]:
        todays = []
        for remote in sorted(listing, key=lambda item: item.name):
            name = InboundFileName.parse(remote.name)
            if name is None:
                continue
            if name.day == today:
                log.info("seen %s (%s bytes)", remote.name, remote.size)
                todays.append(remote)
            else:
                log.info("seen %s: not today's file, left on the server", remote.name)
                report.other_days.append(remote.name)
        return todays

    def _take(self, connection: InboundConnection, remote: RemoteFile, today: dt.date, report: PollReport) -> None:
        name = InboundFileName.parse(remote.name)
        assert name is not None
        with self.archive.receive(download=True) as pending:
            counter = FactsCounter()  # hashed and counted as the bytes arrive: nothing is read back

            def receive(block: bytes) -> None:
                counter.update(block)
                pending.write(block)

            connection.download(remote.name, receive)
            facts = counter.facts()
            disagreement = _size_disagreement(connection, remote, facts)
            if disagreement is not None:
                log.warning(
                    "%s: %s: still changing or cut short; retried next poll",
                    remote.name,
                    ", ".join("{} {}".format(key.replace("_", " "), value) for key, value in disagreement.items()),
                )
                report.incomplete.append(remote.name)
                self._seen(today, remote, EventKind.FILE_INCOMPLETE, **disagreement)
                return
            log.info(
                "downloaded %s: %d bytes, %d lines, sha256 %s", remote.name, facts.size, facts.line_count, facts.sha256
            )
            if facts.line_count != name.expected_lines:
                log.warning(
                    "%s: declares %d records (%d lines) but has %d lines: incomplete, left on the server",
                    remote.name,
                    name.declared_count,
                    name.expected_lines,
                    facts.line_count,
                )
                report.incomplete.append(remote.name)
                self._seen(
                    today, remote, EventKind.FILE_INCOMPLETE, lines=facts.line_count, expected_lines=name.expected_lines
                )
                return
            with self.store.unit_of_work() as uow:
                known = uow.find_file(remote.name, facts.sha256)
                self._record_seen(
                    uow,
                    today,
                    remote,
                    EventKind.FILE_DOWNLOADED,
                    size=facts.size,
                    lines=facts.line_count,
                    sha256=facts.sha256,
                    already_recorded=known is not None,
                )
            if known is not None:
                log.info(
                    "%s was already recorded (%s): deleting it without a second import", remote.name, known.status.value
                )
                self._delete(connection, remote.name, report)
                return
            archive_path = pending.keep(today, remote.name)
        log.info("verified and archived %s at %s", remote.name, archive_path)
        received = ReceivedFile(
            name=remote.name,
            day=today,
            source=FileSource.FTP,
            facts=facts,
            archive_path=archive_path,
            open=lambda: self.archive.open(archive_path),
            received_at=self.now,
            actor=self.actor,
        )
        with self.store.unit_of_work() as uow:
            summary = import_received_file(uow, self.renderer, received)
        {
            FileStatus.IMPORTED: report.imported,
            FileStatus.REJECTED: report.rejected,
            FileStatus.EXTRA: report.extra,
        }[summary.status].append(remote.name)
        self._delete(connection, remote.name, report)

    def _delete(self, connection: InboundConnection, name: str, report: PollReport) -> None:
        try:
            connection.delete(name)
        except TransferError as error:
            log.error("could not delete %s from the server (%s); retried next poll", name, error)
            return
        log.info("deleted %s from the server", name)
        report.deleted.append(name)
        with self.store.unit_of_work() as uow:
            uow.record_event(Event(self.now.date(), EventKind.FILE_DELETED, self.now, self.actor, {"file": name}))

    def _seen(self, today: dt.date, remote: RemoteFile, kind: EventKind, **detail: object) -> None:
        with self.store.unit_of_work() as uow:
            self._record_seen(uow, today, remote, kind, **detail)

    def _record_seen(
        self, uow: UnitOfWork, today: dt.date, remote: RemoteFile, kind: EventKind, **detail: object
    ) -> None:
        """The file as the server listed it, then what the download found."""
        uow.record_event(
            Event(today, EventKind.FILE_SEEN, self.now, self.actor, {"file": remote.name, "size": remote.size})
        )
        uow.record_event(Event(today, kind, self.now, self.actor, dict(detail, file=remote.name)))

    def _alert_if_no_file(
        self, today: dt.date, report: PollReport, server_error: Optional[str], now: dt.datetime, actor: str
    ) -> None:
        with self.store.unit_of_work() as uow:
            if uow.day_has_data(today):
                return
            mail = compose(
                self.renderer,
                MailEvent.NO_FILE,
                today,
                incomplete=report.incomplete,
                rejected=report.rejected,
                other_days=report.other_days,
                failed=report.failed,
                server_error=server_error,
            )
            report.no_file_alert = queue_mail(
                uow, mail, now, once_key="no-file:{}".format(today.isoformat()), actor=actor
            )
        if report.no_file_alert:
            log.warning("no file imported for %s by the alert time: no-file alert queued", today)


def _size_disagreement(
    connection: InboundConnection, remote: RemoteFile, facts: FileFacts
) -> Optional[Dict[str, object]]:
    """None when the bytes received are the whole file; else the sizes that disagree.

    Every size the server gives (the listing's, SIZE after the download) must agree with the bytes
    received: a transfer cut short or a file still being written shows as a difference. A server
    without SIZE leaves the listing's size to decide; one that lists no size either is asked for a
    second download, which must agree byte for byte (SPEC §4)."""
    size_after = connection.size(remote.name)
    if size_after is None and remote.size is None:
        second = hashlib.sha256()
        second_size = connection.download(remote.name, second.update)
        if second.hexdigest() == facts.sha256 and second_size == facts.size:
            return None
        return {"received": facts.size, "second_download": second_size}
    if {remote.size, size_after} - {None} == {facts.size}:
        return None
    return {"listed": remote.size, "received": facts.size, "size_after": size_after}
