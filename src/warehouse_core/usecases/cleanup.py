"""The daily clean-up (WAREHOUSE_ARCHIVE_KEEP_DAYS): archived inbound files and exports older than
the setting are deleted, never today's and never a day whose session is not final; each deletion
is an event of its day, written with the mark that it is gone."""
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
        for file_id, day, path in files:
            existed = self.archive.delete(path)
            with self.store.unit_of_work() as uow:
                uow.mark_archive_deleted(file_id, now)
                uow.record_event(Event(day, EventKind.ARCHIVE_DELETED, now, actor, {"path": path, "existed": existed}))
            log.info("retention: deleted the archived file %s of %s", path, day)
        for day, name in exports:
            existed = self.exports.discard(day, name)
            with self.store.unit_of_work() as uow:
                uow.mark_export_deleted(day, now)
                uow.record_event(Event(day, EventKind.EXPORT_DELETED, now, actor, {"file": name, "existed": existed}))
            log.info("retention: deleted the export %s of %s", name, day)
        return CleanupReport(archived_deleted=len(files), exports_deleted=len(exports))
