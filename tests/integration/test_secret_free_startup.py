"""The real commands with a database URL whose password holds ``%``, a space, ``@`` or ``:``
(encoded or not): the start-up fails with one line, and no form of the password is anywhere on
stderr, where journald keeps it (SPEC §8). libpq quoted such a password in its error.

The database that refuses the password is a few lines of PostgreSQL's protocol: it asks for the
password in clear, keeps what it received (so the test also sees that the service sent the password
meant, decoded where it was encoded), and answers as PostgreSQL does to a wrong password.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
from typing import Dict, Iterator, List
from urllib.parse import quote, unquote

import pytest

from tests.conftest import devstack_pythonpath
from warehouse_devstack.servers import free_port

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
COMMANDS = {
    "warehouse-runner": ["warehouse_runner", "migrate"],
    "warehouse-web": ["warehouse_web", "--no-scheduler", "--port", "0"],
}
PASSWORDS = ["pa%ss", "pa ss", "p@ss:w%rd x", "pa%25ss%20x%40y%3Az"]


class PasswordRefusingDatabase:
    """Speaks PostgreSQL's start-up until the password, then refuses it; ``passwords`` received."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.passwords: List[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                try:
                    self._answer(connection)
                except (OSError, struct.error):
                    pass

    def _answer(self, connection: socket.socket) -> None:
        connection.settimeout(10)
        while True:
            length, code = struct.unpack("!ii", _read(connection, 8))
            _read(connection, length - 8)
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                connection.sendall(b"N")
                continue
            break  # the start-up message
        connection.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
        kind = _read(connection, 1)
        (length,) = struct.unpack("!i", _read(connection, 4))
        body = _read(connection, length - 4)
        if kind == b"p":
            self.passwords.append(body.rstrip(b"\0").decode("utf-8"))
        fields = b"".join(
            key + value.encode() + b"\0"
            for key, value in (
                (b"S", "FATAL"),
                (b"V", "FATAL"),
                (b"C", "28P01"),
                (b"M", 'password authentication failed for user "warehouse"'),
            )
        )
        connection.sendall(b"E" + struct.pack("!i", len(fields) + 5) + fields + b"\0")

    def close(self) -> None:
        self.listener.close()


def _read(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


@pytest.fixture
def refusing_database() -> Iterator[PasswordRefusingDatabase]:
    database = PasswordRefusingDatabase()
    yield database
    database.close()


def run(program: str, url: str, tmp_path, service_environment) -> subprocess.CompletedProcess:
    env: Dict[str, str] = service_environment(
        WAREHOUSE_DATABASE_URL=url,
        WAREHOUSE_INBOUND_FTP_URL="ftp://in:pw@127.0.0.1:{}/".format(free_port()),
        WAREHOUSE_OUTBOUND_FTP_URL="ftp://out:pw@127.0.0.1:{}/".format(free_port()),
        WAREHOUSE_REMOTE_LOG_FS="osfs://" + str(tmp_path),
        WAREHOUSE_REMOTE_LOG_PATH="importer.log",
        WAREHOUSE_SMTP_URL="smtp://127.0.0.1:{}".format(free_port()),
        WAREHOUSE_MAIL_FROM="warehouse@example.com",
        WAREHOUSE_MAIL_TO="ops@example.com",
        WAREHOUSE_DATA_DIR=str(tmp_path / "var"),
        WAREHOUSE_SECRET_KEY="test-only",
    )
    env["PYTHONPATH"] = devstack_pythonpath(env)
    return subprocess.run(
        [sys.executable, "-m", *COMMANDS[program]],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )


def assert_no_password(stderr: str, written: str) -> None:
    for form in {written, unquote(written), quote(unquote(written), safe="")}:
        assert form not in stderr, "the password shows on stderr as {!r}:\n{}".format(form, stderr)


@pytest.mark.parametrize("written", PASSWORDS)
@pytest.mark.parametrize("program", sorted(COMMANDS))
def test_a_refused_password_is_sent_as_meant_and_said_nowhere(
    program, written, refusing_database, tmp_path, service_environment
):
    url = "postgresql://warehouse:{}@127.0.0.1:{}/warehouse".format(written, refusing_database.port)
    finished = run(program, url, tmp_path, service_environment)
    assert finished.returncode == 1
    assert_no_password(finished.stderr, written)
    last = finished.stderr.strip().splitlines()[-1]
    assert last.startswith(program + ": ") and "password authentication failed" in last
    assert refusing_database.passwords and set(refusing_database.passwords) == {unquote(written)}


@pytest.mark.parametrize("program", sorted(COMMANDS))
def test_an_unreachable_database_is_said_without_the_password(program, tmp_path, service_environment):
    written = "p@ss:w%rd x"
    url = "postgresql://warehouse:{}@127.0.0.1:{}/warehouse".format(written, free_port())
    finished = run(program, url, tmp_path, service_environment)
    assert finished.returncode == 1
    assert_no_password(finished.stderr, written)
    assert "Connection refused" in finished.stderr.strip().splitlines()[-1]
