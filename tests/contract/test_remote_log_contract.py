"""The RemoteLog port: the fake, pyfilesystem2's osfs://, and ssh:// through a real OpenSSH sshd."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.fakes import FakeRemoteLog
from warehouse_core.adapters.fs_remote_log import FsRemoteLog, HostKeyMismatch
from warehouse_core.endpoints import RemoteLogEndpoint
from warehouse_core.errors import ConfigurationError, TransferError
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
    def __init__(self, url: str, file: Path, path: str, broken_url: str, host_keys=()) -> None:
        self.remote_log = FsRemoteLog(RemoteLogEndpoint.parse(url), timeout=5, host_keys=host_keys)
        self.file = file
        self.path = path
        self.broken_url = broken_url

    def append(self, text: str) -> None:
        with open(self.file, "a", encoding="utf-8") as handle:
            handle.write(text)

    def truncate(self) -> None:
        self.file.write_text("")

    def break_it(self) -> None:
        self.remote_log.endpoint = RemoteLogEndpoint.parse(self.broken_url)


@pytest.fixture(params=["fake", "osfs", "ssh"])
def side(request, tmp_path):
    if request.param == "fake":
        yield FakeSide()
        return
    if request.param == "osfs":
        yield FsSide(
            "osfs://" + str(tmp_path), tmp_path / "importer.log", "importer.log", "osfs://" + str(tmp_path / "absent")
        )
        return
    # Over SSH, as an account whose login shell records any command it is asked to run: reading
    # the log never asks the server to run one (SPEC §4, "The log server is only read").
    # (Creating the account needs root; without it, the server's own user reads the log.)
    server = request.getfixturevalue("ssh_server")
    account = request.getfixturevalue("recording_ssh_account") if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="warehouse-remote-log-"))
    folder.chmod(0o777)
    url = account.url(server) if account is not None else server.url()
    broken = url.replace(":{}/".format(server.port), ":{}/".format(free_port()))
    recorded = len(account.commands()) if account is not None else 0
    yield FsSide(url, folder / "importer.log", str(folder / "importer.log"), broken, [server.host_key_fingerprint()])
    if account is not None:
        assert account.commands()[recorded:] == []


def test_reads_only_complete_lines_appended_since_the_last_read(side):
    with side.remote_log.follow(side.path) as follower:
        assert list(follower.read_new()) == []  # no log yet
        side.append("old line\n")
        follower.skip_existing()
        side.append("a.txt: 3 records read\nb.txt: ERR")
        assert list(follower.read_new()) == ["a.txt: 3 records read"]
        assert list(follower.read_new()) == []
        side.append("OR\n")
        assert list(follower.read_new()) == ["b.txt: ERROR"]


def test_a_position_noted_by_one_follower_is_where_another_starts(side):
    """What a resumed worker does with the positions stored at the rename."""
    side.append("earlier.txt: 3 records read\n")
    with side.remote_log.follow(side.path) as follower:
        position = follower.skip_existing()
    side.append("a.txt: 3 records read\n")
    with side.remote_log.follow(side.path) as resumed:
        resumed.start_at(position)
        assert list(resumed.read_new()) == ["a.txt: 3 records read"]
    with side.remote_log.follow(side.path + ".absent") as follower:
        assert follower.skip_existing() == 0


def test_a_rotated_or_truncated_log_is_read_from_the_start(side):
    with side.remote_log.follow(side.path) as follower:
        side.append("one\ntwo\nthree\n")
        assert list(follower.read_new()) == ["one", "two", "three"]
        side.truncate()
        side.append("new\n")
        assert list(follower.read_new()) == ["new"]


def test_an_unreachable_log_raises_transfer_error(side):
    side.append("x\n")
    side.break_it()
    with side.remote_log.follow(side.path) as follower:
        with pytest.raises(TransferError):
            list(follower.read_new())


def test_a_line_longer_than_a_read_chunk_and_a_log_many_chunks_long_are_read_whole(side):
    long_line = "x" * 200000 + ".txt: 3 records read"
    many = ["line {}".format(n) for n in range(20000)]
    with side.remote_log.follow(side.path) as follower:
        side.append(long_line + "\n" + "\n".join(many) + "\nhalf")
        assert list(follower.read_new()) == [long_line] + many
        side.append(" written\n")
        assert list(follower.read_new()) == ["half written"]


class ReadSpy:
    """Wraps a filesystem: every read of a file opened through it is recorded (bytes asked, got)."""

    def __init__(self, filesystem, reads):
        self._filesystem, self._reads = filesystem, reads

    def __getattr__(self, name):
        return getattr(self._filesystem, name)

    def openbin(self, *arguments, **options):
        stream, reads = self._filesystem.openbin(*arguments, **options), self._reads

        class Stream:
            def __getattr__(self, name):
                return getattr(stream, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                stream.close()

            def read(self, size=-1):
                data = stream.read(size)
                reads.append((size, len(data)))
                return data

        return Stream()


def test_the_new_part_is_streamed_in_bounded_chunks_as_the_lines_are_consumed(side, monkeypatch):
    from warehouse_core.adapters import fs_remote_log

    if isinstance(side, FakeSide):
        pytest.skip("the fake holds no file")
    reads = []
    opened = side.remote_log.open_filesystem
    monkeypatch.setattr(side.remote_log, "open_filesystem", lambda: ReadSpy(opened(), reads))
    many = ["{:06d}.txt: 3 records read".format(n) for n in range(40000)]  # about 1 MB
    with side.remote_log.follow(side.path) as follower:
        side.append("\n".join(many) + "\n")
        lines = iter(follower.read_new())
        assert next(lines) == many[0]
        assert sum(got for _, got in reads) <= fs_remote_log.CHUNK_BYTES  # one chunk read so far
        assert [many[0]] + list(lines) == many
    assert reads and all(0 <= asked <= fs_remote_log.CHUNK_BYTES for asked, _ in reads)


def test_a_line_that_is_not_utf8_is_read_with_replacement_characters(side):
    if isinstance(side, FakeSide):
        pytest.skip("the fake holds text")
    with side.remote_log.follow(side.path) as follower:
        with open(side.file, "ab") as handle:
            handle.write(b"caf\xe9.txt: 3 records read\n")
        assert list(follower.read_new()) == ["caf\ufffd.txt: 3 records read"]


def test_describe_hides_the_password():
    remote = FsRemoteLog(
        RemoteLogEndpoint.parse("ssh://user:hunter2@example.org:2222/logs"), host_keys=["SHA256:" + "A" * 43]
    )
    assert "hunter2" not in remote.describe() and "example.org:2222" in remote.describe()


# --- the SSH host key is pinned ---------------------------------------------------------------


def read_through(remote_log, path="/nonexistent/importer.log"):
    with remote_log.follow(path) as follower:
        return list(follower.read_new())


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A HOME of the test's own: ~/.ssh/known_hosts and ~/.ssh/config as a test writes them."""
    (tmp_path / "home" / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_another_host_key_is_refused_naming_the_key_seen_and_the_key_expected(ssh_server, impostor_ssh_server, home):
    # The impostor sits where the log server should be and knows the user's key: only the host
    # key tells them apart. Whoever runs the service has even trusted the impostor's key in known_hosts.
    (home / ".ssh" / "known_hosts").write_text(impostor_ssh_server.known_hosts_line() + "\n")
    expected, seen = ssh_server.host_key_fingerprint(), impostor_ssh_server.host_key_fingerprint()
    remote = FsRemoteLog(RemoteLogEndpoint.parse(impostor_ssh_server.url()), timeout=5, host_keys=[expected])
    with pytest.raises(TransferError) as caught:
        read_through(remote)
    message = str(caught.value)
    assert seen in message and expected in message and "127.0.0.1:{}".format(impostor_ssh_server.port) in message
    # Refused before authentication: the impostor never saw a login.
    assert "Accepted" not in (impostor_ssh_server.directory / "sshd.log").read_text()


def test_the_pinned_key_connects_whatever_known_hosts_says(ssh_server, impostor_ssh_server, home):
    # A stale known_hosts entry (the impostor's key under the real server's address) is not ours to obey.
    stale = impostor_ssh_server.known_hosts_line().replace(
        ":{} ".format(impostor_ssh_server.port), ":{} ".format(ssh_server.port)
    )
    (home / ".ssh" / "known_hosts").write_text(stale + "\n")
    folder = Path(tempfile.mkdtemp(prefix="warehouse-remote-log-"))
    (folder / "importer.log").write_text("a.txt: 3 records read\n")
    remote = FsRemoteLog(
        RemoteLogEndpoint.parse(ssh_server.url()),
        timeout=5,
        host_keys=["SHA256:" + "A" * 43, ssh_server.host_key_fingerprint()],
    )
    assert read_through(remote, str(folder / "importer.log")) == ["a.txt: 3 records read"]


def test_ssh_config_cannot_send_the_connection_elsewhere(ssh_server, impostor_ssh_server, home):
    (home / ".ssh" / "config").write_text("Host 127.0.0.1\n    Port {}\n".format(impostor_ssh_server.port))
    folder = Path(tempfile.mkdtemp(prefix="warehouse-remote-log-"))
    (folder / "importer.log").write_text("a.txt: 3 records read\n")
    remote = FsRemoteLog(
        RemoteLogEndpoint.parse(ssh_server.url()), timeout=5, host_keys=[ssh_server.host_key_fingerprint()]
    )
    assert read_through(remote, str(folder / "importer.log")) == ["a.txt: 3 records read"]


@pytest.fixture(scope="module")
def multi_key_ssh_server(ssh_server):
    """An sshd with ed25519, ecdsa and rsa host keys, as Debian's openssh-server installs them."""
    from warehouse_devstack.servers import SshServer

    directory = Path(tempfile.mkdtemp(prefix="warehouse-sshd-keys-"))
    for name in ("user_key", "user_key.pub"):
        shutil.copy(str(ssh_server.directory / name), str(directory / name))
    server = SshServer(directory, extra_host_key_types=("ecdsa", "rsa")).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(str(directory), ignore_errors=True)


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa", "ed25519"])
def test_the_pinned_key_connects_whichever_of_the_servers_host_keys_it_is(multi_key_ssh_server, home, key_type):
    # The administrator hands over the fingerprint of /etc/ssh/ssh_host_rsa_key.pub; paramiko
    # prefers ed25519 and must not refuse the server because another of its keys was offered first.
    folder = Path(tempfile.mkdtemp(prefix="warehouse-remote-log-"))
    (folder / "importer.log").write_text("a.txt: 3 records read\n")
    pinned = multi_key_ssh_server.host_key_fingerprint(key_type)
    remote = FsRemoteLog(RemoteLogEndpoint.parse(multi_key_ssh_server.url()), timeout=5, host_keys=[pinned])
    assert read_through(remote, str(folder / "importer.log")) == ["a.txt: 3 records read"]


def test_a_server_with_none_of_the_pinned_keys_is_refused_naming_every_key_it_offered(multi_key_ssh_server, home):
    expected = "SHA256:" + "A" * 43
    remote = FsRemoteLog(RemoteLogEndpoint.parse(multi_key_ssh_server.url()), timeout=5, host_keys=[expected])
    sshd_log = multi_key_ssh_server.directory / "sshd.log"
    logged_before = len(sshd_log.read_text())
    with pytest.raises(HostKeyMismatch) as refused:
        read_through(remote)
    message = str(refused.value)
    for key_type in ("rsa", "ecdsa", "ed25519"):
        assert multi_key_ssh_server.host_key_fingerprint(key_type) in message
    assert expected in message
    # Refused before authentication on every connection it tried.
    assert "Accepted" not in sshd_log.read_text()[logged_before:]


def test_an_ssh_url_without_pinned_host_keys_is_refused_before_any_connection(ssh_server):
    with pytest.raises(ConfigurationError, match="WAREHOUSE_REMOTE_LOG_HOST_KEY"):
        FsRemoteLog(RemoteLogEndpoint.parse(ssh_server.url()), timeout=5)


# --- the log server is only read ---------------------------------------------------------------


def test_the_recording_account_records_what_an_exec_request_runs_and_still_serves_sftp(
    ssh_server, recording_ssh_account
):
    """The control for every "nothing recorded" assertion: an exec request does reach the shell."""
    import paramiko

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        "127.0.0.1",
        ssh_server.port,
        username=recording_ssh_account.user,
        key_filename=str(ssh_server.user_key),
        look_for_keys=False,
        allow_agent=False,
        timeout=5,
    )
    try:
        recorded = len(recording_ssh_account.commands())
        _, out, _ = client.exec_command("echo recorded", timeout=5)
        assert out.read().strip() == b"recorded"
        assert recording_ssh_account.commands()[recorded:] == ["-c echo recorded"]
        sftp = client.open_sftp()
        assert sftp.stat(str(recording_ssh_account.record)).st_size > 0
        sftp.close()
    finally:
        client.close()


def test_reading_the_log_asks_the_server_to_run_nothing(ssh_server, recording_ssh_account):
    folder = Path(tempfile.mkdtemp(prefix="warehouse-remote-log-"))
    folder.chmod(0o755)
    (folder / "importer.log").write_text("old.txt: 1 records read\n")
    remote = FsRemoteLog(
        RemoteLogEndpoint.parse(recording_ssh_account.url(ssh_server)),
        timeout=5,
        host_keys=[ssh_server.host_key_fingerprint()],
    )
    recorded = len(recording_ssh_account.commands())
    with remote.follow(str(folder / "importer.log")) as follower:
        follower.skip_existing()
        with open(str(folder / "importer.log"), "a") as handle:
            handle.write("a.txt: 3 records read\n")
        assert list(follower.read_new()) == ["a.txt: 3 records read"]
    with remote.follow(str(folder / "absent.log")) as follower:
        assert list(follower.read_new()) == []
    assert recording_ssh_account.commands()[recorded:] == []
