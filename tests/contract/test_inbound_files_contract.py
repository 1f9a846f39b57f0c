"""The InboundFiles port: the fake, and ftplib against pyftpdlib and vsftpd over plain FTP and explicit FTPS."""

from __future__ import annotations

import dataclasses
import ftplib

import pytest

from tests.conftest import FTP_SIDES, ftp_side
from tests.fakes import FakeInbound
from warehouse_core.adapters.ftplib_files import FtplibFiles
from warehouse_core.errors import TransferError
from warehouse_core.model import RemoteFile

CONTENT = b"600000001|1|Frutta|1.00\n" * 5000


class FakeSide:
    def __init__(self) -> None:
        self.inbound = FakeInbound()

    def put(self, name: str, data: bytes) -> None:
        self.inbound.files[name] = data

    def make_folder(self, name: str) -> None:
        pass  # the fake holds plain files only

    def names(self):
        return sorted(self.inbound.files)

    def refuse(self, command: str) -> None:
        self.inbound.failing.add("LOGIN" if command == "USER" else command)

    def cut_downloads_after(self, size: int) -> None:
        self.inbound.cut_download_after = size

    def without_size(self, listing_sizes: bool = True) -> None:
        self.inbound.size_command = False
        self.inbound.listing_sizes = listing_sizes

    def drop_connection_before(self, command: str, saying_421: bool) -> None:
        self.inbound.drop_before.add(command)


class FtpSide:
    def __init__(self, server, tls_context=None) -> None:
        self.server = server
        self.inbound = FtplibFiles.from_endpoint(server.endpoint(), timeout=5, ssl_context=tls_context)

    def put(self, name: str, data: bytes) -> None:
        (self.server.root / name).write_bytes(data)

    def make_folder(self, name: str) -> None:
        (self.server.root / name).mkdir()

    def names(self):
        return self.server.files()

    def refuse(self, command: str) -> None:
        self.server.refuse(command)

    def cut_downloads_after(self, size: int) -> None:
        if not hasattr(self.server, "faults"):
            pytest.skip("vsftpd cannot be made to cut a transfer short; pyftpdlib's side covers it")
        self.server.faults.short_retr_after = size

    def without_size(self, listing_sizes: bool = True) -> None:
        if not hasattr(self.server, "faults"):
            pytest.skip("vsftpd always has SIZE; pyftpdlib's side covers a server without it")
        self.server.faults.unsupported.add("SIZE")
        if not listing_sizes:
            self.server.faults.unsupported.update({"MLSD", "LIST"})  # NLST names no size

    def drop_connection_before(self, command: str, saying_421: bool) -> None:
        if not hasattr(self.server, "faults"):
            pytest.skip("vsftpd cannot be made to drop a connection on cue; pyftpdlib's side covers it")
        (self.server.faults.time_out_before if saying_421 else self.server.faults.drop_before).add(command)


@pytest.fixture(params=FTP_SIDES)
def side(request):
    return ftp_side(request, FakeSide, FtpSide)


def download(connection, name):
    blocks = []
    count = connection.download(name, blocks.append)
    return count, b"".join(blocks)


def test_list_download_size_delete(side):
    side.put("Letture20261126083015123_9.txt", CONTENT)
    side.put("other.txt", b"x")
    with side.inbound.connect() as connection:
        listing = sorted(connection.list_files(), key=lambda f: f.name)
        assert listing == [
            RemoteFile("Letture20261126083015123_9.txt", len(CONTENT)),
            RemoteFile("other.txt", 1),
        ]
        assert download(connection, "Letture20261126083015123_9.txt") == (len(CONTENT), CONTENT)
        assert connection.size("Letture20261126083015123_9.txt") == len(CONTENT)
        connection.delete("Letture20261126083015123_9.txt")
        assert connection.size("Letture20261126083015123_9.txt") is None
    assert side.names() == ["other.txt"]


def test_folders_and_links_are_not_listed_as_files(side):
    side.put("Letture20261126083015123_9.txt", CONTENT)
    side.make_folder("Letture20261125083015123_9.txt")
    with side.inbound.connect() as connection:
        assert connection.list_files() == [RemoteFile("Letture20261126083015123_9.txt", len(CONTENT))]


@pytest.mark.parametrize("listing_sizes", [True, False])
def test_a_server_without_size_answers_none_and_lists_what_it_knows(side, listing_sizes):
    side.put("a.txt", CONTENT)
    side.without_size(listing_sizes=listing_sizes)
    with side.inbound.connect() as connection:
        assert connection.list_files() == [RemoteFile("a.txt", len(CONTENT) if listing_sizes else None)]
        assert connection.size("a.txt") is None
        assert download(connection, "a.txt") == (len(CONTENT), CONTENT)


def test_missing_files_are_errors_not_empty_downloads(side):
    with side.inbound.connect() as connection:
        with pytest.raises(TransferError):
            download(connection, "absent.txt")
        with pytest.raises(TransferError):
            connection.delete("absent.txt")


def test_refused_commands_raise_transfer_error(side):
    side.put("a.txt", CONTENT)
    side.refuse("RETR")
    side.refuse("DELE")
    with side.inbound.connect() as connection:
        with pytest.raises(TransferError):
            download(connection, "a.txt")
        with pytest.raises(TransferError):
            connection.delete("a.txt")
    assert side.names() == ["a.txt"]


@pytest.mark.parametrize("saying_421", [True, False], ids=["421", "without a word"])
def test_a_delete_after_the_server_dropped_the_idle_connection_logs_on_again(side, saying_421):
    # DELE comes after the import, minutes after the download: by then a server's idle timeout
    # (vsftpd's idle_session_timeout, pyftpdlib's 300 s) or a NAT may have ended the connection.
    side.put("a.txt", CONTENT)
    side.put("b.txt", CONTENT)
    with side.inbound.connect() as connection:
        assert download(connection, "a.txt")[1] == CONTENT
        side.drop_connection_before("DELE", saying_421)
        connection.delete("a.txt")
        assert download(connection, "b.txt")[1] == CONTENT  # the new connection serves on
    assert side.names() == ["b.txt"]


def test_a_delete_refused_after_logging_on_again_is_still_an_error(side):
    side.put("a.txt", CONTENT)
    with side.inbound.connect() as connection:
        side.drop_connection_before("DELE", saying_421=True)
        side.refuse("DELE")
        with pytest.raises(TransferError):
            connection.delete("a.txt")
    assert side.names() == ["a.txt"]


def test_a_delete_whose_answer_was_lost_is_done_when_the_file_is_gone(ftp_server):
    ftp_server.root.joinpath("a.txt").write_bytes(CONTENT)
    ftp_server.faults.drop_answer_to.add("DELE")
    with FtplibFiles.from_endpoint(ftp_server.endpoint(), timeout=5).connect() as connection:
        connection.delete("a.txt")  # carried out, then the connection went: logged on again, 550, done
        with pytest.raises(TransferError, match="550"):
            connection.delete("a.txt")  # on a live connection, no such file is still an error
    assert ftp_server.files() == []


def test_a_delete_that_cannot_log_on_again_is_an_error(side):
    side.put("a.txt", CONTENT)
    with side.inbound.connect() as connection:
        side.drop_connection_before("DELE", saying_421=False)
        side.refuse("USER")
        with pytest.raises(TransferError, match="cannot log on"):
            connection.delete("a.txt")
    assert side.names() == ["a.txt"]


def test_a_short_transfer_reports_the_bytes_really_received(side):
    side.put("a.txt", CONTENT)
    side.cut_downloads_after(1000)
    with side.inbound.connect() as connection:
        count, data = download(connection, "a.txt")
        assert count == len(data) == 1000
        assert connection.size("a.txt") == len(CONTENT)


def test_wrong_password_is_a_transfer_error_without_the_password(ftp_server):
    endpoint = dataclasses.replace(ftp_server.endpoint(), password="not-the-password")
    with pytest.raises(TransferError) as caught:
        with FtplibFiles.from_endpoint(endpoint, timeout=5).connect():
            pass
    assert "not-the-password" not in str(caught.value)


def test_a_server_that_is_not_there_fails_within_the_timeout():
    from warehouse_devstack.servers import free_port

    with pytest.raises(TransferError, match="cannot log on"):
        with FtplibFiles(host="127.0.0.1", port=free_port(), timeout=2).connect():
            pass


def test_ftps_protects_the_data_channel(ftps_server, client_tls_context):
    ftps_server.root.joinpath("a.txt").write_bytes(CONTENT)
    inbound = FtplibFiles.from_endpoint(ftps_server.endpoint(), timeout=5, ssl_context=client_tls_context)
    with inbound.connect() as connection:
        assert isinstance(connection.client, ftplib.FTP_TLS)
        assert connection.client._prot_p is True
        assert download(connection, "a.txt")[1] == CONTENT


def test_ftps_refuses_an_untrusted_certificate(ftps_server):
    import ssl

    inbound = FtplibFiles.from_endpoint(ftps_server.endpoint(), timeout=5, ssl_context=ssl.create_default_context())
    with pytest.raises(TransferError, match="cannot log on"):
        with inbound.connect():
            pass


def test_a_connection_dropped_mid_download_is_an_error(ftp_server):
    ftp_server.root.joinpath("a.txt").write_bytes(CONTENT)
    ftp_server.faults.drop_retr_after = 1000
    inbound = FtplibFiles.from_endpoint(ftp_server.endpoint(), timeout=5)
    with pytest.raises(TransferError):
        with inbound.connect() as connection:
            download(connection, "a.txt")


def test_listing_falls_back_to_list_when_mlsd_is_not_implemented(ftp_server):
    ftp_server.root.joinpath("a b.txt").write_bytes(CONTENT)
    ftp_server.root.joinpath("folder").mkdir()
    ftp_server.faults.unsupported.add("MLSD")
    inbound = FtplibFiles.from_endpoint(ftp_server.endpoint(), timeout=5)
    with inbound.connect() as connection:
        assert connection.list_files() == [RemoteFile("a b.txt", len(CONTENT))]


def test_listing_falls_back_to_nlst_and_size_when_mlsd_and_list_are_not_implemented(ftp_server):
    ftp_server.root.joinpath("a.txt").write_bytes(CONTENT)
    ftp_server.faults.unsupported.update({"MLSD", "LIST"})
    inbound = FtplibFiles.from_endpoint(ftp_server.endpoint(), timeout=5)
    with inbound.connect() as connection:
        assert connection.list_files() == [RemoteFile("a.txt", len(CONTENT))]


def test_vsftpd_answers_reach_the_adapter_unchanged(vsftpd_server):
    """vsftpd has no MLSD (it answers 501 to OPTS MLST), lists in ``ls -l`` form, answers SIZE in binary mode with 213 and
    a missing file with 550, and confirms RNFR/RNTO (350, 250) and DELE (250)."""
    vsftpd_server.root.joinpath("Letture 20261126.txt").write_bytes(CONTENT)
    vsftpd_server.root.joinpath("folder").mkdir()
    inbound = FtplibFiles.from_endpoint(vsftpd_server.endpoint(), timeout=5)
    with inbound.connect() as connection:
        assert connection.list_files() == [RemoteFile("Letture 20261126.txt", len(CONTENT))]
        assert connection.size("Letture 20261126.txt") == len(CONTENT)
        assert connection.size("folder") is None and connection.size("absent") is None
        connection.rename("Letture 20261126.txt", "b.txt")
        connection.delete("b.txt")
        with pytest.raises(TransferError, match="550"):
            connection.delete("b.txt")
    assert vsftpd_server.files() == []
    log = vsftpd_server.protocol_log()
    for reply in (
        '"501 Option not understood."',
        '"213 {}"'.format(len(CONTENT)),
        '"350 Ready for RNTO."',
        '"250 Rename successful."',
        '"250 Delete operation successful."',
        '"550 Delete operation failed."',
    ):
        assert reply in log, reply


def test_a_refused_listing_is_an_error_not_an_empty_folder(ftp_server):
    ftp_server.root.joinpath("a.txt").write_bytes(CONTENT)
    ftp_server.faults.refuse.add("MLSD")
    inbound = FtplibFiles.from_endpoint(ftp_server.endpoint(), timeout=5)
    with inbound.connect() as connection:
        with pytest.raises(TransferError):
            connection.list_files()
