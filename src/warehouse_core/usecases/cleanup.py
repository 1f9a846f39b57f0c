"""The daily clean-up (WAREHOUSE_ARCHIVE_KEEP_DAYS): archived inbound files (with the lines stored
from them) and exports older than the setting are deleted, never today's and never a day whose
session is not final; each deletion is an event of its day, written with the mark that it is gone."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from warehouse_core.audit import Event, EventKind
from warehouse_core.ports import Archive, ExportFiles, Transactions, UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanupReport:
    archived_deleted: int = 0
    exports_deleted: int = 0


class CleanUp:
    def __init__(
        self, *, store: Transactions[UnitOfWork], archive: Archive, exports: ExportFiles, keep_days: int
    ) -> None:
        self.store = store
        self.archive = archive
        self.exports = exports
        self.keep_days = keep_days

    def __call__(self, now: dt.datetime, actor: str) -> CleanupReport:
        if self.keep_days <= 0:
            return CleanupReport()
        # Files of the cut-off day itself are kept: "older than N days" is strictly before it (and
        # keep_days >= 1 keeps today's always).
        cutoff = now.date() - dt.timedelta(days=self.keep_days)
        with self.store.unit_of_work() as uow:
            files = uow.archived_files_before(cutoff)
            exports = uow.exports_before(cutoff)
        # Each deletion is claimed, done and recorded in one transaction: a clean-up of another
        # process (the web app and the runner both run it) that read the same candidates finds the
        # claim and skips the file, so there is one event per deletion. A crash after the unlink
        # rolls the claim back; the next run finds the file gone and records it ("existed": false).
        archived_deleted = exports_deleted = 0
        for file_id, day, path in files:
            with self.store.unit_of_work() as uow:
                if not uow.mark_archive_deleted(file_id, now):
                    continue
                # The lines stored from the file go with it (on PostgreSQL its partitions are
                # dropped); what was recorded of the file and the invoices it exported stay.
                lines_removed = uow.drop_file_lines(file_id, day)
                existed = self.archive.delete(path)
                uow.record_event(
                    Event(
                        day,
                        EventKind.ARCHIVE_DELETED,
                        now,
                        actor,
                        {"path": path, "existed": existed, "lines_removed": lines_removed},
                    )
                )
            archived_deleted += 1
            log.info("retention: deleted the archived file %s of %s", path, day)
        for day, name in exports:
            with self.store.unit_of_work() as uow:
                if not uow.mark_export_deleted(day, now):
                    continue
                existed = self.exports.discard(day, name)
                uow.record_event(Event(day, EventKind.EXPORT_DELETED, now, actor, {"file": name, "existed": existed}))
            exports_deleted += 1
            log.info("retention: deleted the export %s of %s", name, day)
        return CleanupReport(archived_deleted=archived_deleted, exports_deleted=exports_deleted)
