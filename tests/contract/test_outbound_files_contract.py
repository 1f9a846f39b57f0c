"""The OutboundFiles port: the fake, and ftplib against pyftpdlib and vsftpd (plain FTP and explicit FTPS)."""

from __future__ import annotations

import io

import pytest

from tests.conftest import FTP_SIDES, ftp_side
from tests.fakes import FakeOutbound
from warehouse_core.adapters.ftplib_files import FtplibFiles
from warehouse_core.errors import TransferError

EXPORT = "Spedizioni20261126_6.txt"
CONTENT = b"600000001|2026-11-20|C001|Rossi|Via Roma 1|12|120.50\n" * 2000


class FakeSide:
    def __init__(self) -> None:
        self.outbound = FakeOutbound()

    def names(self):
        return sorted(self.outbound.files)

    def content(self, name):
        return self.outbound.files[name]

    def refuse_uploads(self) -> None:
        self.outbound.fail_next = 99

    def leave(self, name, data):
        self.outbound.files[name] = data


class FtpSide:
    def __init__(self, server, tls_context=None) -> None:
        self.server = server
        self.outbound = FtplibFiles.from_endpoint(server.endpoint(), timeout=5, ssl_context=tls_context)

    def names(self):
        return self.server.files()

    def content(self, name):
        return (self.server.root / name).read_bytes()

    def refuse_uploads(self) -> None:
        self.server.refuse("STOR")

    def leave(self, name, data):
        """A file on the server as an earlier upload left it (owned like the folder, so the FTP
        account may delete it)."""
        import os

        path = self.server.root / name
        path.write_bytes(data)
        folder = os.stat(str(self.server.root))
        os.chown(str(path), folder.st_uid, folder.st_gid)


@pytest.fixture(params=FTP_SIDES)
def side(request):
    return ftp_side(request, FakeSide, FtpSide)


def test_upload_leaves_exactly_the_final_file(side):
    side.outbound.upload(EXPORT, lambda: io.BytesIO(CONTENT))
    assert side.names() == [EXPORT]
    assert side.content(EXPORT) == CONTENT


def test_upload_again_replaces_the_file(side):
    side.outbound.upload(EXPORT, lambda: io.BytesIO(b"old\n"))
    side.outbound.upload(EXPORT, lambda: io.BytesIO(CONTENT))
    assert side.names() == [EXPORT] and side.content(EXPORT) == CONTENT


def test_a_refused_upload_raises_and_leaves_no_final_file(side):
    side.refuse_uploads()
    with pytest.raises(TransferError):
        side.outbound.upload(EXPORT, lambda: io.BytesIO(CONTENT))
    assert EXPORT not in side.names()


def test_a_connection_dropped_during_the_upload_leaves_no_final_file(ftp_server):
    ftp_server.faults.drop_stor = True
    outbound = FtplibFiles.from_endpoint(ftp_server.endpoint(), timeout=5)
    with pytest.raises(TransferError):
        outbound.upload(EXPORT, lambda: io.BytesIO(CONTENT))
    assert EXPORT not in ftp_server.files()


def test_a_refused_rename_leaves_only_the_temporary_file(ftp_server):
    ftp_server.faults.refuse.add("RNTO")
    outbound = FtplibFiles.from_endpoint(ftp_server.endpoint(), timeout=5)
    with pytest.raises(TransferError):
        outbound.upload(EXPORT, lambda: io.BytesIO(CONTENT))
    assert ftp_server.files() == ["." + EXPORT + ".part"]


def test_an_upload_to_a_server_without_size_checks_the_stored_size_in_the_listing(ftp_server):
    """SIZE is an extension (RFC 3659): a server without it still lists the temporary dot-file
    with its size, and the upload is checked there before the rename."""
    ftp_server.faults.unsupported.add("SIZE")
    outbound = FtplibFiles.from_endpoint(ftp_server.endpoint(), timeout=5)
    outbound.upload(EXPORT, lambda: io.BytesIO(CONTENT))
    assert ftp_server.files() == [EXPORT] and (ftp_server.root / EXPORT).read_bytes() == CONTENT


def test_an_upload_whose_stored_size_nothing_tells_is_not_renamed_into_place(ftp_server):
    """Neither SIZE nor a listing with sizes (NLST only): the upload cannot be checked, so it
    stops before the rename, saying why."""
    ftp_server.faults.unsupported.update({"SIZE", "MLSD", "LIST"})
    outbound = FtplibFiles.from_endpoint(ftp_server.endpoint(), timeout=5)
    with pytest.raises(TransferError, match="neither SIZE nor a listing"):
        outbound.upload(EXPORT, lambda: io.BytesIO(CONTENT))
    assert EXPORT not in ftp_server.files()


def test_size_of_the_final_file_and_none_before_it_is_there(side):
    assert side.outbound.size(EXPORT) is None
    side.outbound.upload(EXPORT, lambda: io.BytesIO(CONTENT))
    assert side.outbound.size(EXPORT) == len(CONTENT)


TEMPORARY = "." + EXPORT + ".part"  # the name the consumer ignores while the upload is under way


class Closed(Exception):
    pass


def test_size_does_not_take_an_unfinished_upload_for_the_file(side):
    side.leave(TEMPORARY, b"partial")
    assert side.outbound.size(EXPORT) is None


def test_a_stop_before_the_rename_leaves_no_final_file_and_the_temporary_one_to_the_caller(side):
    """Once the rename may have been asked for, only the caller knows whether the temporary file
    may go: its absence is what says a rename went through."""
    seen = []

    def closed_meanwhile():
        seen.append(side.names())
        raise Closed("closed by an operator")

    with pytest.raises(Closed):
        side.outbound.upload(EXPORT, lambda: io.BytesIO(CONTENT), before_rename=closed_meanwhile)
    assert seen == [[TEMPORARY]]  # asked once the file was stored, before the rename
    assert side.names() == [TEMPORARY]
    assert side.outbound.discard(EXPORT) is True
    assert side.names() == []


def test_discard_removes_what_an_unfinished_upload_left_and_only_that(side):
    side.leave(TEMPORARY, b"partial")
    assert side.outbound.discard(EXPORT) is True
    assert side.names() == []
    assert side.outbound.discard(EXPORT) is False  # nothing left: nothing to do (after a rename, say)
    side.outbound.upload(EXPORT, lambda: io.BytesIO(CONTENT))
    side.leave(TEMPORARY, b"partial")
    side.outbound.discard(EXPORT)
    assert side.names() == [EXPORT] and side.content(EXPORT) == CONTENT


def test_temporary_present_sees_the_hidden_temporary_file_until_the_rename(side):
    """After the rename was asked for, the temporary file's absence is what says it went through
    (vsftpd hides dot files from LIST: SIZE must see it)."""
    assert not side.outbound.temporary_present(EXPORT)
    side.leave(TEMPORARY, b"partial")
    assert side.outbound.temporary_present(EXPORT)
    side.outbound.upload(EXPORT, lambda: io.BytesIO(CONTENT))
    assert not side.outbound.temporary_present(EXPORT)


def test_fence_sets_the_temporary_file_aside_so_that_no_rename_can_follow(side):
    """Close's fence: set aside means nothing was delivered, and the set-aside file still counts as
    'not renamed' for whoever asks later; neither file there means the rename went through."""
    side.leave(TEMPORARY, b"stored and checked")
    assert side.outbound.fence(EXPORT) is True
    assert side.names() == [TEMPORARY + ".closed"]
    assert side.outbound.temporary_present(EXPORT)
    assert side.outbound.fence(EXPORT) is True  # asked again (a settle retried): the same answer
    assert side.outbound.discard(EXPORT) is True and side.names() == []
    side.outbound.upload(EXPORT, lambda: io.BytesIO(CONTENT))
    assert side.outbound.fence(EXPORT) is False  # renamed into place: nothing to set aside
    assert side.names() == [EXPORT]


def test_the_ledgers_verdicts_read_the_server_alike_on_every_side(side):
    """delivery_states' one answer to "was it renamed?", over the real servers (SPEC §5): the
    temporary file there is no, once the fence set it aside, whether or not a final file of that
    name is there; the temporary file gone is yes. The fence's verdict: set aside is no, nothing to set aside is yes."""
    from warehouse_core.delivery_states import Delivery, fence_verdict, rename_verdict

    side.leave(TEMPORARY, b"stored and checked")
    assert rename_verdict(side.outbound, EXPORT) is Delivery.NO
    side.leave(EXPORT, b"an older file of the same name")
    assert rename_verdict(side.outbound, EXPORT) is Delivery.NO
    assert fence_verdict(side.outbound, EXPORT) is Delivery.NO
    assert side.outbound.discard(EXPORT) is True
    side.outbound.upload(EXPORT, lambda: io.BytesIO(CONTENT))
    assert rename_verdict(side.outbound, EXPORT) is Delivery.YES
    assert fence_verdict(side.outbound, EXPORT) is Delivery.YES
    assert side.names() == [EXPORT]
