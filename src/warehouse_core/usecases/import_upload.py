"""ImportUpload: an operator's file, imported for today exactly as the FTP path would."""

from __future__ import annotations

import datetime as dt
import logging
from typing import BinaryIO, Optional

from warehouse_core.audit import SYSTEM
from warehouse_core.errors import Conflict, InvalidFile, PayloadTooLarge
from warehouse_core.model import FileSource, ImportSummary, safe_file_name
from warehouse_core.parsing import CHUNK_SIZE, FactsCounter
from warehouse_core.ports import Archive, MailRenderer, Transactions, UnitOfWork
from warehouse_core.usecases.importing import ReceivedFile, import_received_file

log = logging.getLogger(__name__)
MAX_NAME_LENGTH = 120


def display_name(name: Optional[str], now: dt.datetime) -> str:
    """The upload's own base name, made safe to record; a dated one when it has none."""
    return safe_file_name(name or "", MAX_NAME_LENGTH) or "upload-{}.txt".format(now.strftime("%Y%m%d%H%M%S"))


class ImportUpload:
    def __init__(
        self, *, store: Transactions[UnitOfWork], archive: Archive, renderer: MailRenderer, max_bytes: int
    ) -> None:
        self.store = store
        self.archive = archive
        self.renderer = renderer
        self.max_bytes = max_bytes

    def __call__(self, name: Optional[str], stream: BinaryIO, now: dt.datetime, actor: str = SYSTEM) -> ImportSummary:
        today = now.date()
        self._refuse_if_day_has_data(today)
        safe_name = display_name(name, now)
        with self.archive.receive() as pending:
            counter = FactsCounter()  # hashed and counted as the bytes arrive: nothing is read back
            while True:
                chunk = stream.read(CHUNK_SIZE)
                if not chunk:
                    break
                counter.update(chunk)
                if counter.size > self.max_bytes:
                    raise PayloadTooLarge(limit_mb=self.max_bytes // (1024 * 1024))
                pending.write(chunk)
            if counter.size == 0:
                # A file of ignored lines is valid (SPEC §5), but zero bytes is no file at all.
                raise InvalidFile(code="empty_file")
            facts = counter.facts()
            archive_path = pending.keep(today, safe_name)
        log.info("upload %s archived at %s (%d bytes, %d lines)", safe_name, archive_path, facts.size, facts.line_count)
        received_file = ReceivedFile(
            name=safe_name,
            day=today,
            source=FileSource.UPLOAD,
            facts=facts,
            archive_path=archive_path,
            open=lambda: self.archive.open(archive_path),
            received_at=now,
            actor=actor,
        )
        with self.store.unit_of_work() as uow:
            if uow.day_has_data(today):
                raise Conflict(code="day_has_data", day=today.isoformat())
            return import_received_file(uow, self.renderer, received_file)

    def _refuse_if_day_has_data(self, today: dt.date) -> None:
        with self.store.unit_of_work() as uow:
            if uow.day_has_data(today):
                raise Conflict(code="day_has_data", day=today.isoformat())
