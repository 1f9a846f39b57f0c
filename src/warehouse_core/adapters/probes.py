"""One cheap try of each dependency, for the checks the scheduler runs (SPEC §7: dependency_up).

Each probe returns nothing or raises with a one-line reason; it logs in, looks, and leaves.
"""

from __future__ import annotations

import logging
from typing import Callable, Dict, Tuple

from warehouse_core.adapters.fs_remote_log import FsRemoteLog
from warehouse_core.adapters.ftplib_files import FtplibFiles
from warehouse_core.adapters.smtp_mailer import SmtpMailer
from warehouse_core.errors import TransferError

Probe = Callable[[], None]
log = logging.getLogger(__name__)


def ftp_probe(files: FtplibFiles) -> Probe:
    def probe() -> None:
        with files.connect() as connection:
            connection.list_files()

    return probe


def smtp_probe(mailer: SmtpMailer) -> Probe:
    return mailer.check


def remote_log_probe(remote_log: FsRemoteLog, todays_log: Callable[[], Tuple[str, bool]]) -> Probe:
    """Reads today's log file: its size and when its last line was written. ``todays_log`` gives
    its path and whether the path names the day: then no log yet today is fine (every morning
    starts so) as long as its folder is there."""

    def probe() -> None:
        path, dated = todays_log()
        facts = remote_log.inspect(path, folder_is_enough=dated)
        if facts is None:
            log.info("remote log %s on %s: not written yet today", path, remote_log.describe())
            return
        size, modified = facts
        log.info(
            "remote log %s on %s: %d bytes, last line written at %s",
            path,
            remote_log.describe(),
            size,
            modified.isoformat() if modified is not None else "an unknown time",
        )

    return probe


def database_probe(ping: Callable[[], bool]) -> Probe:
    def probe() -> None:
        if not ping():
            raise TransferError("the database does not answer")

    return probe


def probes_for(todays_log: Callable[[], Tuple[str, bool]], **adapters: object) -> Dict[str, Probe]:
    """The probes of the real adapters among ``adapters`` (a fake has none: tests pass their own);
    ``todays_log``: the remote log's path today, and whether it names the day."""
    probes: Dict[str, Probe] = {}
    for name, adapter in adapters.items():
        if isinstance(adapter, FtplibFiles):
            probes[name] = ftp_probe(adapter)
        elif isinstance(adapter, SmtpMailer):
            probes[name] = smtp_probe(adapter)
        elif isinstance(adapter, FsRemoteLog):
            probes[name] = remote_log_probe(adapter, todays_log)
    return probes
