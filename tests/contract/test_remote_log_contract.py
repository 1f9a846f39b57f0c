"""The RemoteLog port: the fake, pyfilesystem2's osfs://, and ssh:// through a real OpenSSH sshd."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.fakes import FakeRemoteLog
from warehouse_core.adapters.fs_remote_log import FsRemoteLog
from warehouse_core.errors import TransferError
from warehouse_devstack.servers import free_port


class FakeSide:
    path = "importer.log"

    def __init__(self) -> None:
        self.remote_log = FakeRemoteLog()
        self.partial = ""

    def append(self, text: str) -> None:
        text = self.partial + text
        *complete, self.partial = text.split("\n")
        for line in complete:
            self.remote_log.append(self.path, line)

    def truncate(self) -> None:
        self.remote_log.logs[self.path] = []

    def break_it(self) -> None:
        self.remote_log.unreadable = True


class FsSide:
    def __init__(self, url: str, file: Path, path: str, broken_url: str) -> None:
        self.remote_log = FsRemoteLog(url, timeout=5)
        self.file = file
        self.path = path
        self.broken_url = broken_url

    def append(self, text: str) -> None:
        with open(self.file, "a", encoding="utf-8") as handle:
            handle.write(text)

    def truncate(self) -> None:
        self.file.write_text("")

    def break_it(self) -> None:
        self.remote_log.url = self.broken_url


@pytest.fixture(params=["fake", "osfs", "ssh"])
def side(request, tmp_path):
    if request.param == "fake":
        return FakeSide()
    if request.param == "osfs":
        return FsSide(
            "osfs://" + str(tmp_path), tmp_path / "importer.log", "importer.log", "osfs://" + str(tmp_path / "absent")
        )
    server = request.getfixturevalue("ssh_server")
    folder = Path(tempfile.mkdtemp(prefix="warehouse-remote-log-"))
    broken = server.url().replace(":{}/".format(server.port), ":{}/".format(free_port()))
    return FsSide(server.url(), folder / "importer.log", str(folder / "importer.log"), broken)


def test_reads_only_complete_lines_appended_since_the_last_read(side):
    with side.remote_log.follow(side.path) as follower:
        assert follower.read_new() == []  # no log yet
        side.append("old line\n")
        follower.skip_existing()
        side.append("a.txt: 3 records read\nb.txt: ERR")
        assert follower.read_new() == ["a.txt: 3 records read"]
        assert follower.read_new() == []
        side.append("OR\n")
        assert follower.read_new() == ["b.txt: ERROR"]


def test_a_rotated_or_truncated_log_is_read_from_the_start(side):
    with side.remote_log.follow(side.path) as follower:
        side.append("one\ntwo\nthree\n")
        assert follower.read_new() == ["one", "two", "three"]
        side.truncate()
        side.append("new\n")
        assert follower.read_new() == ["new"]


def test_an_unreachable_log_raises_transfer_error(side):
    side.append("x\n")
    side.break_it()
    with side.remote_log.follow(side.path) as follower:
        with pytest.raises(TransferError):
            follower.read_new()


def test_describe_hides_the_password():
    remote = FsRemoteLog("ssh://user:hunter2@example.org:2222/logs")
    assert "hunter2" not in remote.describe() and "example.org:2222" in remote.describe()
