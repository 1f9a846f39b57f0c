"""The roles the core talks to, one typing.Protocol each; adapters need not inherit from them."""
from warehouse_core.ports.archive import Archive, PendingFile
from warehouse_core.ports.clock import Clock
from warehouse_core.ports.inbound_files import InboundConnection, InboundFiles
from warehouse_core.ports.mailer import Mailer, MailRenderer
from warehouse_core.ports.store import Store, UnitOfWork

__all__ = [
    "Archive",
    "Clock",
    "InboundConnection",
    "InboundFiles",
    "MailRenderer",
    "Mailer",
    "PendingFile",
    "Store",
    "UnitOfWork",
]
