"""``warehouse-runner`` as a subprocess against real PostgreSQL, FTP and SMTP servers on loopback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from typing import Dict

import pytest

from tests.conftest import INCOMPLETE_SAMPLE, MALFORMED_SAMPLE, VALID_SAMPLE
from warehouse_devstack.servers import body_text


@pytest.fixture
def runner(tmp_path, postgres_server, db_schema, real_store, ftp_server, smtp_server, service_environment):
    """Runs warehouse-runner with an environment pointing at the servers; returns the finished process."""
    env: Dict[str, str] = service_environment(
        **{
            "WAREHOUSE_DATABASE_URL": postgres_server,
            "WAREHOUSE_DB_SCHEMA": db_schema,
            "WAREHOUSE_INBOUND_FTP_URL": ftp_server.url(),
            "WAREHOUSE_OUTBOUND_FTP_URL": ftp_server.url("/outbound"),
            "WAREHOUSE_REMOTE_LOG_FS": "osfs://" + str(tmp_path),
            "WAREHOUSE_REMOTE_LOG_PATH": "importer.log",
            "WAREHOUSE_SMTP_URL": smtp_server.url(),
            "WAREHOUSE_MAIL_FROM": "warehouse@example.com",
            "WAREHOUSE_MAIL_TO": "ops@example.com",
            "WAREHOUSE_DATA_DIR": str(tmp_path / "var"),
        }
    )

    def run(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "warehouse_runner"] + list(arguments),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )

    run.env = env  # type: ignore[attr-defined]
    return run


def query(store, sql, params=None):
    with store.connection() as connection:
        return connection.execute(sql, params).fetchall()


def test_poll_imports_the_valid_sample_end_to_end(runner, ftp_server, smtp_server, real_store, tmp_path):
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    result = runner("poll", "--at", "2026-11-26T10:00")
    assert result.returncode == 0, result.stderr
    assert "imported: " + VALID_SAMPLE.name in result.stdout
    assert ftp_server.files() == []
    archived = tmp_path / "var" / "archive" / "2026-11-26" / VALID_SAMPLE.name
    assert archived.read_bytes() == VALID_SAMPLE.read_bytes()
    assert query(real_store, "SELECT count(*) FROM invoice_line") == [(8,)]
    assert query(real_store, "SELECT status, actual_lines, declared_count FROM inbound_file") == [("imported", 10, 9)]
    categories = [row[0] for row in query(real_store, "SELECT name FROM category ORDER BY name")]
    assert categories == [
        "bevande",
        "carne",
        "frutta",
        "frutta secca",
        "latticini",
        "pane",
        "pesce",
        "surgelati",
        "verdura",
    ]
    not_found = query(
        real_store, "SELECT DISTINCT invoice_number FROM invoice_line WHERE invoice_status = 'not_found' ORDER BY 1"
    )
    assert not_found == [("600000004",), ("600000099",)]
    assert smtp_server.events() == ["import-summary"]
    text = body_text(smtp_server.messages[0])
    assert "600000004" in text and "600000099" in text
    for needle in ("seen " + VALID_SAMPLE.name, "downloaded", "verified and archived", "imported", "deleted"):
        assert needle in result.stderr
    assert ftp_server.password not in result.stderr + result.stdout


def test_poll_imports_from_a_server_that_tells_no_size(runner, ftp_server, real_store):
    # NLST names no size and SIZE answers 502: two downloads that agree decide (SPEC §4).
    ftp_server.faults.unsupported.update({"SIZE", "MLSD", "LIST"})
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    result = runner("poll", "--at", "2026-11-26T10:00")
    assert result.returncode == 0, result.stderr
    assert "imported: " + VALID_SAMPLE.name in result.stdout
    assert ftp_server.files() == []
    assert query(real_store, "SELECT count(*) FROM invoice_line") == [(8,)]


def test_poll_with_a_wrong_inbound_password_exits_1_with_one_line(runner, ftp_server):
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    wrong = ftp_server.url().replace(ftp_server.password, "not-the-password")
    result = subprocess.run(
        [sys.executable, "-m", "warehouse_runner", "poll", "--at", "2026-11-26T10:00"],
        env=dict(runner.env, WAREHOUSE_INBOUND_FTP_URL=wrong),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("warehouse-runner: poll: the inbound server could not be read") and "530" in last
    assert "nothing to do" not in result.stdout + result.stderr
    assert "not-the-password" not in result.stdout + result.stderr
    assert ftp_server.files() == [VALID_SAMPLE.name]


def test_malformed_sample_is_rejected_and_incomplete_sample_stays(runner, ftp_server, smtp_server, real_store):
    shutil.copy(str(MALFORMED_SAMPLE), str(ftp_server.root))
    shutil.copy(str(INCOMPLETE_SAMPLE), str(ftp_server.root))
    result = runner("poll", "--at", "2026-11-26T10:00")
    assert result.returncode == 0, result.stderr
    assert ftp_server.files() == [INCOMPLETE_SAMPLE.name]
    assert query(real_store, "SELECT count(*) FROM invoice_line") == [(0,)]
    assert query(real_store, "SELECT name, status FROM inbound_file") == [(MALFORMED_SAMPLE.name, "rejected")]
    assert smtp_server.events() == ["import-failed"]
    text = body_text(smtp_server.messages[0])
    for line in ("line 2:", "line 3:", "line 4:", "line 5:"):
        assert line in text


def test_no_file_alert_once_and_nothing_outside_the_window(runner, ftp_server, smtp_server, real_store):
    for moment in ("2026-11-26T07:30", "2026-11-28T10:00", "2026-11-28T19:00"):
        result = runner("poll", "--at", moment)
        assert result.returncode == 0 and "skipped" in result.stdout
    assert smtp_server.events() == []
    for moment in ("2026-11-26T19:00", "2026-11-26T19:30", "2026-11-26T20:00"):
        assert runner("poll", "--at", moment).returncode == 0
    assert smtp_server.events() == ["no-file"]


def test_import_send_mail_and_migrate_commands(runner, smtp_server, real_store, tmp_path):
    assert runner("migrate").returncode == 0
    result = runner("import", str(MALFORMED_SAMPLE))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("warehouse-runner: " + MALFORMED_SAMPLE.name + " rejected")
    result = runner("import", str(VALID_SAMPLE))
    assert result.returncode == 0, result.stderr
    assert "8 lines stored, 2 ignored, 2 invoices not found" in result.stdout
    again = runner("import", str(VALID_SAMPLE))
    assert again.returncode == 1
    # Worded from messages.txt, as the page words the same refusal.
    assert again.stderr.strip().splitlines()[-1].endswith("already has imported data: a manual upload is refused.")
    assert runner("send-mail").returncode == 0
    assert smtp_server.events() == ["import-failed", "import-summary"]


def test_an_import_over_the_limit_is_worded_from_messages_txt(runner, tmp_path):
    too_large = tmp_path / "Letture20261126083015123_9.txt"
    too_large.write_bytes(b"6" * (2 * 1024 * 1024))
    env = dict(runner.env, WAREHOUSE_MAX_UPLOAD_MB="1")
    result = subprocess.run(
        [sys.executable, "-m", "warehouse_runner", "import", str(too_large)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "warehouse-runner: The file is larger than the 1 MB upload limit."


def test_an_empty_import_is_worded_from_messages_txt(runner, tmp_path):
    empty = tmp_path / "Letture20261126083015123_9.txt"
    empty.write_bytes(b"")
    result = runner("import", str(empty))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "warehouse-runner: The file is empty: there is nothing to import."


def test_commands_without_at_take_their_day_from_the_clock_the_test_gives(runner, tmp_path):
    # A Saturday (2026-11-28) whatever today is: the runner builds its clock from WAREHOUSE_CLOCK_START.
    runner.env["WAREHOUSE_CLOCK_START"] = "2026-11-28T23:59"
    result = runner("import", str(VALID_SAMPLE))
    assert result.returncode == 0, result.stderr
    assert "imported for 2026-11-28" in result.stdout
    assert (tmp_path / "var" / "archive" / "2026-11-28" / VALID_SAMPLE.name).exists()


def test_bad_configuration_is_one_line_naming_every_bad_key(runner):
    env = dict(runner.env, WAREHOUSE_FTP_TIMEOUT="never", WAREHOUSE_POLL_DAYS="someday")
    del env["WAREHOUSE_SMTP_URL"]
    result = subprocess.run(
        [sys.executable, "-m", "warehouse_runner", "poll"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    for key in ("WAREHOUSE_FTP_TIMEOUT", "WAREHOUSE_POLL_DAYS", "WAREHOUSE_SMTP_URL"):
        assert key in line
    assert "secret" not in line


def run_with(env, *arguments):
    return subprocess.run(
        [sys.executable, "-m", "warehouse_runner"] + list(arguments),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )


def test_poll_at_a_pretend_time_records_no_poll_for_the_metrics(runner, ftp_server, real_store):
    """The README's alert reads warehouse_poll_last_success_timestamp_seconds: a poll --at must not
    move it to the pretend time (hours ahead, or days back)."""
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    result = runner("poll", "--at", "2026-11-26T19:30")
    assert result.returncode == 0, result.stderr
    assert "imported: " + VALID_SAMPLE.name in result.stdout
    assert query(real_store, "SELECT name FROM service_check WHERE name = 'poll'") == []


def test_export_columns_missing_from_the_view_stop_every_command_that_reads_it(runner, real_store):
    env = dict(runner.env, WAREHOUSE_EXPORT_COLUMNS="invoice_number,nope,customer_code,gone_too")
    for command in ("poll", "import"):
        result = run_with(env, command, *(["/dev/null"] if command == "import" else []))
        assert result.returncode == 1
        last = result.stderr.strip().splitlines()[-1]
        assert "WAREHOUSE_EXPORT_COLUMNS" in last and "nope, gone_too" in last and "public.invoice_view" in last


def test_migrate_and_the_commands_that_do_not_read_the_view_run_before_it_exists(runner, real_store, db_schema):
    """A DBA prepares the service's schema before the customer's view is there (docs/dba.md):
    migrate must not ask for the view; poll, which reads it, still says what is missing."""
    env = dict(runner.env, WAREHOUSE_INVOICE_VIEW="public.not_there_yet")
    result = run_with(env, "migrate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "schema {} is up to date".format(db_schema)
    for command in (["days"], ["send-mail"]):
        assert run_with(env, *command).returncode == 0, command
    poll = run_with(env, "poll")
    assert poll.returncode == 1
    assert "public.not_there_yet" in poll.stderr.strip().splitlines()[-1]


def test_database_down_is_a_one_line_error(runner):
    from warehouse_devstack.servers import free_port

    env = dict(runner.env, WAREHOUSE_DATABASE_URL="postgresql://postgres:pw-hidden@127.0.0.1:{}/x".format(free_port()))
    result = subprocess.run(
        [sys.executable, "-m", "warehouse_runner", "migrate"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("warehouse-runner: cannot start")
    assert "pw-hidden" not in result.stderr


def test_the_daemon_stops_cleanly_on_sigterm(runner, real_store):
    import signal
    import threading
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "warehouse_runner"],
        env=runner.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        # The schema exists before the daemon starts (real_store made it): wait for the daemon's
        # own word that its handlers are in place, however slowly a loaded machine starts it.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("warehouse-runner started" in line for line in lines):
            assert process.poll() is None, "".join(lines)
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        reader.join(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = "".join(lines)
    assert process.returncode == 0, stderr
    assert "scheduler stopped" in stderr


def test_warehouse_web_serves_the_page_and_stops_on_sigterm(runner, real_store):
    import json
    import signal
    import time
    import urllib.request

    from warehouse_devstack.servers import free_port, wait_for_port

    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from warehouse_web.cli import main; sys.exit(main())",
            "--port",
            str(port),
            "--no-scheduler",
        ],
        env=runner.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, timeout=30)
        page = urllib.request.urlopen("http://127.0.0.1:{}/".format(port), timeout=10).read().decode()
        assert "Start session" in page
        status = json.loads(urllib.request.urlopen("http://127.0.0.1:{}/api/session".format(port), timeout=10).read())
        assert status["state"] in ("none", "ready")
        health = urllib.request.urlopen("http://127.0.0.1:{}/healthz".format(port), timeout=10)
        assert health.status == 200
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "warehouse-web stopped" in stderr
