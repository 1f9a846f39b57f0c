"""The daily clean-up (WAREHOUSE_ARCHIVE_KEEP_DAYS): archived inbound files (with the lines stored
from them) and exports older than the setting are deleted, never today's and never those of a day
that still needs someone: not final, failed within the earlier days' window (ops may retry it and
the operator start it, which needs its lines), or with delivery unknown (SPEC §5). Only settled
days lose them. Each deletion is an event of its day, written with the mark that it is gone."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from warehouse_core.audit import Event, EventKind
from warehouse_core.ports import Archive, ExportFiles, Transactions, UnitOfWork
from warehouse_core.usecases.earlier_days import earlier_days

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
            # The store's candidates are of final days; the days still needing someone (the
            # page's earlier list, the ledger's rule) and those whose delivery is unknown (any
            # date, the settle job's) are left out here, in the same unit of work.
            needed = {session.day for session in earlier_days(uow, now.date())}
            needed.update(uow.unknown_delivery_days())
            files = [
                (file_id, day, path) for file_id, day, path in uow.archived_files_before(cutoff) if day not in needed
            ]
            exports = [(day, name) for day, name in uow.exports_before(cutoff) if day not in needed]
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
                self.exports.discard_kept(day, name)  # the first runs a redelivery kept of it
                uow.record_event(Event(day, EventKind.EXPORT_DELETED, now, actor, {"file": name, "existed": existed}))
            exports_deleted += 1
            log.info("retention: deleted the export %s of %s", name, day)
        return CleanupReport(archived_deleted=archived_deleted, exports_deleted=exports_deleted)
