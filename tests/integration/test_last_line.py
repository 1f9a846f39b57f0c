"""SPEC §9: the reason line is the last line on stderr, nothing after it (not even a library's
traceback at interpreter exit), for every command, with an ``ssh://`` remote log.

fs.sshfs's filesystems used to be closed by the garbage collector at exit, which printed
``Exception ignored in: <function FS.__del__>`` and a TypeError after the reason line.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

import pytest

from tests.conftest import devstack_pythonpath
from warehouse_devstack.servers import free_port


@pytest.fixture
def environment(tmp_path, postgres_server, db_schema, ssh_server, service_environment) -> Dict[str, str]:
    folder = Path(tempfile.mkdtemp(prefix="warehouse-remote-log-"))
    (folder / "importer-20261126.log").write_text("earlier.txt: 3 records read\n")
    env = service_environment(
        WAREHOUSE_DATABASE_URL=postgres_server,
        WAREHOUSE_DB_SCHEMA=db_schema,
        # Nobody listens on the FTP and SMTP ports: those commands fail, with their reason line.
        WAREHOUSE_INBOUND_FTP_URL="ftp://in:pw@127.0.0.1:{}/".format(free_port()),
        WAREHOUSE_OUTBOUND_FTP_URL="ftp://out:pw@127.0.0.1:{}/".format(free_port()),
        WAREHOUSE_SMTP_URL="smtp://127.0.0.1:{}".format(free_port()),
        WAREHOUSE_REMOTE_LOG_FS=ssh_server.url(),
        WAREHOUSE_REMOTE_LOG_HOST_KEY=ssh_server.host_key_fingerprint(),
        WAREHOUSE_REMOTE_LOG_PATH=str(folder / "importer-{date}.log"),
        WAREHOUSE_MAIL_FROM="warehouse@example.com",
        WAREHOUSE_MAIL_TO="ops@example.com",
        WAREHOUSE_DATA_DIR=str(tmp_path / "var"),
        WAREHOUSE_FTP_TIMEOUT="5",
        WAREHOUSE_SECRET_KEY="test-only",
    )
    env["PYTHONPATH"] = devstack_pythonpath(env)
    return env


def stderr_of(env: Dict[str, str], module: str, *arguments: str, fails: bool = True) -> List[str]:
    finished = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert (finished.returncode != 0) is fails, finished.stderr
    return finished.stderr.strip().splitlines()


def assert_reason_is_last(lines: List[str], program: str, reason: str) -> None:
    assert lines, "nothing on stderr"
    last = lines[-1]
    assert last.startswith(program + ": ") and reason in last, "\n".join(lines)
    # Everything above it is INFO detail (or a WARNING the command explains), never a traceback.
    assert not any("Traceback" in line or "Exception ignored" in line for line in lines), "\n".join(lines)


def migrated(env: Dict[str, str]) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "warehouse_runner", "migrate"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    assert "Traceback" not in finished.stderr and "Exception ignored" not in finished.stderr, finished.stderr


def test_check(environment):
    lines = stderr_of(environment, "warehouse_runner", "check")
    assert_reason_is_last(lines, "warehouse-runner", "dependencies not ok: inbound_ftp, outbound_ftp, smtp")


def test_check_with_a_host_key_that_is_not_the_servers(environment):
    # paramiko logged the refusal at ERROR with a traceback, from its own thread.
    environment = dict(environment, WAREHOUSE_REMOTE_LOG_HOST_KEY="SHA256:" + "A" * 43)
    lines = stderr_of(environment, "warehouse_runner", "check")
    assert_reason_is_last(lines, "warehouse-runner", "dependencies not ok: inbound_ftp, outbound_ftp, smtp, remote_log")


@pytest.mark.parametrize(
    "form",
    ["password the server refuses", "no credentials", "nobody listening", "osfs"],
)
def test_check_with_every_form_of_remote_log_url(environment, ssh_server, tmp_path, form):
    url = {
        "password the server refuses": "ssh://{}:not-it@127.0.0.1:{}/".format(ssh_server.user, ssh_server.port),
        "no credentials": "ssh://nobody-here@127.0.0.1:{}/".format(ssh_server.port),
        "nobody listening": "ssh://u:pw@127.0.0.1:{}/".format(free_port()),
        "osfs": "osfs://" + str(tmp_path),
    }[form]
    environment = dict(environment, WAREHOUSE_REMOTE_LOG_FS=url, HOME=str(tmp_path))
    lines = stderr_of(environment, "warehouse_runner", "check")
    assert_reason_is_last(lines, "warehouse-runner", "dependencies not ok")
    assert "not-it" not in "\n".join(lines)


def test_check_with_a_log_folder_that_is_not_there(environment, ssh_server):
    environment = dict(environment, WAREHOUSE_REMOTE_LOG_FS=ssh_server.url().replace("/?", "/no/such/folder?"))
    lines = stderr_of(environment, "warehouse_runner", "check")
    assert_reason_is_last(lines, "warehouse-runner", "remote_log")


def test_poll(environment):
    lines = stderr_of(environment, "warehouse_runner", "poll")
    assert_reason_is_last(lines, "warehouse-runner", "poll: the inbound server could not be read")


def test_import(environment, tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    lines = stderr_of(environment, "warehouse_runner", "import", str(tmp_path / "empty.txt"))
    assert_reason_is_last(lines, "warehouse-runner", "")


def database_down(environment: Dict[str, str]) -> Dict[str, str]:
    return dict(environment, WAREHOUSE_DATABASE_URL="postgresql://postgres@127.0.0.1:{}/warehouse".format(free_port()))


def test_send_mail(environment, tmp_path):
    # An import queues its summary; the relay is down, so the mail waits for its next try.
    (tmp_path / "garbage.txt").write_text("not an invoice file\n")
    stderr_of(environment, "warehouse_runner", "import", str(tmp_path / "garbage.txt"), fails=False)
    lines = stderr_of(environment, "warehouse_runner", "send-mail", fails=False)
    assert not any("Traceback" in line or "Exception ignored" in line for line in lines), "\n".join(lines)
    lines = stderr_of(database_down(environment), "warehouse_runner", "send-mail")
    assert_reason_is_last(lines, "warehouse-runner", "connection failed")


def test_migrate_ends_clean_and_a_failed_one_ends_on_its_reason(environment):
    migrated(environment)
    lines = stderr_of(database_down(environment), "warehouse_runner", "migrate")
    assert_reason_is_last(lines, "warehouse-runner", "connection failed")


def test_days(environment):
    migrated(environment)
    lines = stderr_of(environment, "warehouse_runner", "days", "--limit", "x")
    assert lines[-1].startswith("warehouse-runner days: error: argument --limit"), "\n".join(lines)
    lines = stderr_of(environment, "warehouse_runner", "days", fails=False)
    assert not any("Traceback" in line or "Exception ignored" in line for line in lines), "\n".join(lines)
    lines = stderr_of(database_down(environment), "warehouse_runner", "days")
    assert_reason_is_last(lines, "warehouse-runner", "connection failed")


def test_session_retry(environment):
    migrated(environment)
    lines = stderr_of(environment, "warehouse_runner", "session", "retry", "--day", "2026-11-25", "--reason", "test")
    assert_reason_is_last(lines, "warehouse-runner", "")


def test_warehouse_web_start_up_failure(environment):
    environment = dict(environment, WAREHOUSE_INVOICE_VIEW="public.no_such_view")
    lines = stderr_of(environment, "warehouse_web", "--no-scheduler", "--port", str(free_port()))
    assert_reason_is_last(lines, "warehouse-web", "")


def test_session_close(environment):
    migrated(environment)
    lines = stderr_of(environment, "warehouse_runner", "session", "close", "--day", "2026-11-25", "--reason", "test")
    assert_reason_is_last(lines, "warehouse-runner", "2026-11-25")
