"""Whether a session's export reached the outbound server (SPEC §5).

Asked wherever the rename may have gone through unseen: by a worker resumed after it, by a worker
whose rename reply was lost or whose day fails in phase renaming, and by ``session retry``. (Close
does not ask: it sets the temporary file aside, see sessions.settle_closed_rename.)
"""

from __future__ import annotations

from warehouse_core.model import WorkSession
from warehouse_core.ports import ExportFiles, OutboundFiles


def in_place(outbound: OutboundFiles, exports: ExportFiles, session: WorkSession) -> bool:
    """True when the final file is on the outbound server with the local export's size; raises
    TransferError when the server cannot be asked."""
    name = session.export_file
    assert name is not None
    with exports.open(session.day, name) as local:
        expected = local.seek(0, 2)
    return outbound.size(name) == expected


def renamed(outbound: OutboundFiles, session: WorkSession) -> bool:
    """For a session in phase ``renaming``: whether the rename went through. The temporary file was
    stored and checked before that phase was committed, and only the rename removes it while the
    session runs (a Close sets it aside, which still counts as there), so its absence says so, even
    once the consumer has taken the final file away (a refused rename over an older file of the
    same name and size leaves it there). Raises
    TransferError when the server cannot be asked."""
    name = session.export_file
    assert name is not None
    return not outbound.temporary_present(name)
