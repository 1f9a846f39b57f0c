"""The unit of work on PostgreSQL: one transaction's connection, seen through each role the core uses."""

from __future__ import annotations

from warehouse_core.adapters.postgres.files_and_lines import PsycopgFilesAndLines
from warehouse_core.adapters.postgres.history import PsycopgEvents, PsycopgHistory
from warehouse_core.adapters.postgres.outbox import PsycopgOutbox
from warehouse_core.adapters.postgres.sessions import PsycopgSessions


class PsycopgUnitOfWork(PsycopgFilesAndLines, PsycopgSessions, PsycopgOutbox, PsycopgEvents, PsycopgHistory):
    """Built by ``PsycopgStore.unit_of_work`` inside a transaction; every role shares its connection."""
