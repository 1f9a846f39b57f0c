"""One cheap try of each dependency, for the checks the scheduler runs (SPEC §7: dependency_up).

Each probe returns nothing or raises with a one-line reason; it logs in, looks, and leaves.
"""

from __future__ import annotations

from typing import Callable, Dict

from warehouse_core.adapters.fs_remote_log import FsRemoteLog
from warehouse_core.adapters.ftplib_files import FtplibFiles
from warehouse_core.adapters.smtp_mailer import SmtpMailer
from warehouse_core.errors import TransferError

Probe = Callable[[], None]


def ftp_probe(files: FtplibFiles) -> Probe:
    def probe() -> None:
        with files.connect() as connection:
            connection.list_files()

    return probe


def smtp_probe(mailer: SmtpMailer) -> Probe:
    return mailer.check


def remote_log_probe(remote_log: FsRemoteLog) -> Probe:
    def probe() -> None:
        filesystem = remote_log.open_filesystem()
        filesystem.close()

    return probe


def database_probe(ping: Callable[[], bool]) -> Probe:
    def probe() -> None:
        if not ping():
            raise TransferError("the database does not answer")

    return probe


def probes_for(**adapters: object) -> Dict[str, Probe]:
    """The probes of the real adapters among ``adapters`` (a fake has none: tests pass their own)."""
    probes: Dict[str, Probe] = {}
    for name, adapter in adapters.items():
        if isinstance(adapter, FtplibFiles):
            probes[name] = ftp_probe(adapter)
        elif isinstance(adapter, SmtpMailer):
            probes[name] = smtp_probe(adapter)
        elif isinstance(adapter, FsRemoteLog):
            probes[name] = remote_log_probe(adapter)
    return probes
