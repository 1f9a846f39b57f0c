"""SIGTERM and Ctrl-C while a service starts (SPEC §9: it "stops cleanly on SIGTERM").

The stop handlers of warehouse-runner and warehouse-web come after the start-up: the connection to
the database, the migration, the check of the view. A start-up that waits on a database host that
says nothing is the case ops meet: the signal must end it at once with one line, no traceback.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from typing import Dict, Iterator

import pytest

from tests.conftest import devstack_pythonpath
from warehouse_devstack.servers import free_port

STOP_WITHIN_SECONDS = 10.0
PROGRAMS = {"warehouse-runner": "warehouse_runner", "warehouse-web": "warehouse_web", "make run": "warehouse_devstack"}


@pytest.fixture
def silent_database() -> Iterator[socket.socket]:
    """A database host that takes the connection and never says a word."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(60)
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture
def environment(tmp_path, silent_database, service_environment) -> Dict[str, str]:
    env = service_environment(
        WAREHOUSE_DATABASE_URL="postgresql://postgres@127.0.0.1:{}/warehouse".format(silent_database.getsockname()[1]),
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
    return env


def signalled_while_connecting(
    program: str, signum: int, env: Dict[str, str], listener: socket.socket, tmp_path, *arguments: str
):
    """``program`` started, signalled once it waits on the silent database; (exit status, stderr)."""
    if program == "make run":
        arguments = ("--var", str(tmp_path / "demo"), "--port", str(free_port()))
    # A session of its own, as a terminal's foreground job: Ctrl-C goes to every process of it.
    process = subprocess.Popen(
        [sys.executable, "-m", PROGRAMS[program], *arguments],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        connection, _ = listener.accept()  # it is connecting to the database now, and waits
        with connection:
            os.killpg(process.pid, signum)
            try:
                _, stderr = process.communicate(timeout=STOP_WITHIN_SECONDS)
            except subprocess.TimeoutExpired:
                pytest.fail("{} still running {} s after the signal".format(program, STOP_WITHIN_SECONDS))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    return process.returncode, stderr


@pytest.mark.parametrize("program", sorted(PROGRAMS))
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_start_up_stops_with_one_line_and_no_traceback(
    program, signum, environment, silent_database, tmp_path
):
    status, stderr = signalled_while_connecting(program, signum, environment, silent_database, tmp_path)
    assert status == 0, "exit {}\n{}".format(status, stderr[-2000:])
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert "stopped by {} during start-up".format(signal.Signals(signum).name) in last, stderr[-2000:]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_command_stopped_before_its_end_says_so_and_does_not_exit_0(signum, environment, silent_database, tmp_path):
    """cron and monitoring must not take an interrupted `poll` for one that ran (SPEC §9)."""
    status, stderr = signalled_while_connecting(
        "warehouse-runner", signum, environment, silent_database, tmp_path, "poll"
    )
    assert status == 128 + signum, stderr[-2000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-2000:]
    name = signal.Signals(signum).name
    assert stderr.strip().splitlines()[-1] == "warehouse-runner: poll interrupted by {}: not done".format(name)
