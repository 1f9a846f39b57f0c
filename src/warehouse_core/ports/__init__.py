"""The roles the core talks to, one typing.Protocol each; adapters need not inherit from them."""

from warehouse_core.ports.archive import Archive, PendingFile
from warehouse_core.ports.clock import Clock
from warehouse_core.ports.export_files import ExportFiles, ExportWriter
from warehouse_core.ports.history import Events, History
from warehouse_core.ports.inbound_files import InboundConnection, InboundFiles
from warehouse_core.ports.mailer import Mailer, MailRenderer
from warehouse_core.ports.outbound_files import OutboundFiles
from warehouse_core.ports.remote_log import LogFollower, RemoteLog
from warehouse_core.ports.sentences import Sentences
from warehouse_core.ports.store import (
    ExportSource,
    FilesAndLines,
    Locks,
    Outbox,
    Sessions,
    Store,
    Transactions,
    UnitOfWork,
)

__all__ = [
    "Archive",
    "Clock",
    "ExportFiles",
    "ExportSource",
    "ExportWriter",
    "Events",
    "FilesAndLines",
    "History",
    "Locks",
    "LogFollower",
    "InboundConnection",
    "InboundFiles",
    "MailRenderer",
    "Mailer",
    "OutboundFiles",
    "Outbox",
    "PendingFile",
    "RemoteLog",
    "Sentences",
    "Sessions",
    "Store",
    "Transactions",
    "UnitOfWork",
]
