"""``warehouse-runner check`` (SPEC §9) against real servers: PostgreSQL, FTPS and FTP
(pyftpdlib), SMTPS with AUTH (aiosmtpd) and the remote log over SSH (OpenSSH), with each one in
turn down or misconfigured. One line per dependency, ``ok`` or why; exit 0 only if all are ok."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from warehouse_devstack.servers import FtpServer, free_port
from warehouse_runner import cli

DEPENDENCIES = ["database", "inbound_ftp", "outbound_ftp", "smtp", "remote_log"]


@pytest.fixture
def environment(
    monkeypatch,
    tmp_path,
    postgres_server,
    db_schema,
    ftps_server,
    ftp_server,
    smtps_server,
    ssh_server,
    certificate_authority,
):
    folder = Path(tempfile.mkdtemp(prefix="warehouse-remote-log-"))
    values = {
        "WAREHOUSE_DATABASE_URL": postgres_server,
        "WAREHOUSE_DB_SCHEMA": db_schema,
        "WAREHOUSE_INBOUND_FTP_URL": ftps_server.url(),
        "WAREHOUSE_OUTBOUND_FTP_URL": ftp_server.url(),
        "WAREHOUSE_SMTP_URL": smtps_server.url(),
        "WAREHOUSE_REMOTE_LOG_FS": ssh_server.url(),
        "WAREHOUSE_REMOTE_LOG_HOST_KEY": ssh_server.host_key_fingerprint(),
        "WAREHOUSE_REMOTE_LOG_PATH": str(folder / "importer-{date}.log"),
        "WAREHOUSE_CA_FILE": str(certificate_authority.cafile),
        "WAREHOUSE_MAIL_FROM": "warehouse@example.com",
        "WAREHOUSE_MAIL_TO": "ops@example.com",
        "WAREHOUSE_DATA_DIR": str(tmp_path / "var"),
        "WAREHOUSE_FTP_TIMEOUT": "5",
        "WAREHOUSE_CLOCK_START": "2026-11-26T10:00",  # today's log is importer-20261126.log
    }
    for key in [k for k in __import__("os").environ if k.startswith("WAREHOUSE_")]:
        monkeypatch.delenv(key)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def check(capsys):
    """Runs the command; (exit status, {dependency: its line's outcome}, last line on stderr)."""
    status = cli.main(["check"])
    captured = capsys.readouterr()
    lines = dict(line.split(None, 1) for line in captured.out.strip().splitlines())
    errors = captured.err.strip().splitlines()
    return status, lines, errors[-1] if errors else ""


def only_failing(lines, name):
    assert list(lines) == DEPENDENCIES
    assert [n for n, outcome in lines.items() if outcome != "ok"] == [name], lines
    return lines[name]


def test_all_ok(environment, capsys, postgres_server, db_schema):
    status, lines, last = check(capsys)
    assert status == 0 and lines == {name: "ok" for name in DEPENDENCIES} and last == ""
    import psycopg

    with psycopg.connect(postgres_server) as connection:  # check changes nothing: no migration ran
        found = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (db_schema,)).fetchone()
    assert found is None


def test_check_asks_the_log_server_to_run_nothing(environment, capsys, monkeypatch, ssh_server, recording_ssh_account):
    """SPEC §4: the log server is only read. The log account's login shell records any command."""
    log_file = Path(environment["WAREHOUSE_REMOTE_LOG_PATH"].format(date="20261126"))
    log_file.parent.chmod(0o755)
    log_file.write_text("earlier.txt: 3 records read\n")
    log_file.chmod(0o644)
    monkeypatch.setenv("WAREHOUSE_REMOTE_LOG_FS", recording_ssh_account.url(ssh_server))
    recorded = len(recording_ssh_account.commands())
    status, lines, _ = check(capsys)
    assert status == 0 and lines["remote_log"] == "ok"
    assert recording_ssh_account.commands()[recorded:] == []


def remote_log_line(capsys):
    _, lines, _ = check(capsys)
    return lines["remote_log"]


def test_the_remote_log_line_reads_todays_log_file(environment, capsys, monkeypatch, caplog):
    """Not only the folder: the log itself, its size and the time of its last line (INFO above)."""
    template = Path(environment["WAREHOUSE_REMOTE_LOG_PATH"])
    today = Path(str(template).format(date="20261126"))
    today.write_text("a.txt: 3 records read\nb.txt: 4 records read\n")
    import os

    os.utime(str(today), (1795161600, 1795161600))  # 2026-11-20T08:00:00Z
    with caplog.at_level("INFO", logger="warehouse_core.adapters.probes"):
        assert remote_log_line(capsys) == "ok"
    said = [r.getMessage() for r in caplog.records if r.name == "warehouse_core.adapters.probes"]
    assert any("44 bytes" in m and "2026-11-20T08:00:00+00:00" in m and today.name in m for m in said), said

    today.unlink()
    today.mkdir()
    outcome = remote_log_line(capsys)
    assert outcome != "ok" and today.name in outcome and "not a file" in outcome
    today.rmdir()

    # With {date}, no log yet today is how every morning starts; its folder must be there.
    assert remote_log_line(capsys) == "ok"
    monkeypatch.setenv("WAREHOUSE_REMOTE_LOG_PATH", str(template.parent / "missing" / template.name))
    outcome = remote_log_line(capsys)
    assert outcome != "ok" and "missing" in outcome
    # Without {date}, the log must be there.
    monkeypatch.setenv("WAREHOUSE_REMOTE_LOG_PATH", str(template.parent / "importer.log"))
    outcome = remote_log_line(capsys)
    assert outcome != "ok" and "importer.log" in outcome and "no such file" in outcome


def test_a_log_the_account_may_not_read_is_not_ok(environment, capsys, monkeypatch, ssh_server, recording_ssh_account):
    today = Path(environment["WAREHOUSE_REMOTE_LOG_PATH"].format(date="20261126"))
    today.parent.chmod(0o755)
    today.write_text("a.txt: 3 records read\n")
    today.chmod(0o600)  # root's: the log account may see it but not read it
    monkeypatch.setenv("WAREHOUSE_REMOTE_LOG_FS", recording_ssh_account.url(ssh_server))
    outcome = remote_log_line(capsys)
    assert outcome != "ok" and today.name in outcome and "ermission denied" in outcome


def test_database_down(environment, capsys, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_DATABASE_URL", "postgresql://postgres@127.0.0.1:{}/warehouse".format(free_port()))
    status, lines, last = check(capsys)
    assert status == 1 and "Connection refused" in only_failing(lines, "database")
    assert last == "warehouse-runner: 1 of 5 dependencies not ok: database"


def test_a_view_without_an_export_column(environment, capsys, monkeypatch, postgres_server, db_schema):
    import psycopg

    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(
            'CREATE SCHEMA "{0}"; CREATE VIEW "{0}".short_view AS SELECT invoice_number, invoice_date,'
            " customer_code, delivery_address FROM public.invoice_view".format(db_schema)
        )
    try:
        monkeypatch.setenv("WAREHOUSE_INVOICE_VIEW", db_schema + ".short_view")
        status, lines, _ = check(capsys)
        assert status == 1
        assert only_failing(
            lines, "database"
        ) == "the invoice view {}.short_view lacks the column customer_name".format(db_schema)
        monkeypatch.setenv("WAREHOUSE_INVOICE_VIEW", db_schema + ".no_such_view")
        status, lines, _ = check(capsys)
        assert status == 1 and "does not exist" in only_failing(lines, "database")
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as connection:
            connection.execute('DROP SCHEMA "{}" CASCADE'.format(db_schema))


def test_wrong_ftp_password(environment, capsys, monkeypatch, ftps_server):
    monkeypatch.setenv("WAREHOUSE_INBOUND_FTP_URL", ftps_server.url().replace(ftps_server.password, "not-it"))
    status, lines, last = check(capsys)
    outcome = only_failing(lines, "inbound_ftp")
    assert status == 1 and "530" in outcome and "not-it" not in outcome and "not-it" not in last


def test_outbound_ftp_down(environment, capsys, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_OUTBOUND_FTP_URL", "ftp://u:p@127.0.0.1:{}/".format(free_port()))
    status, lines, _ = check(capsys)
    assert status == 1 and "cannot log on" in only_failing(lines, "outbound_ftp")


def test_ftps_certificate_from_an_unknown_ca(environment, capsys, monkeypatch, tmp_path, unknown_certificate_authority):
    impostor = FtpServer(tmp_path / "impostor", tls=True, certfile=unknown_certificate_authority.issue("ftp")).start()
    try:
        monkeypatch.setenv("WAREHOUSE_INBOUND_FTP_URL", impostor.url())
        status, lines, _ = check(capsys)
    finally:
        impostor.stop()
    assert status == 1 and "CERTIFICATE_VERIFY_FAILED" in only_failing(lines, "inbound_ftp")


def test_wrong_smtp_password(environment, capsys, monkeypatch, smtps_server):
    monkeypatch.setenv("WAREHOUSE_SMTP_URL", smtps_server.url(password="not-it"))
    status, lines, last = check(capsys)
    outcome = only_failing(lines, "smtp")
    assert status == 1 and "535" in outcome and "not-it" not in outcome + last


def test_smtp_down(environment, capsys, smtps_server):
    smtps_server.stop()
    status, lines, _ = check(capsys)
    assert status == 1 and "Connection refused" in only_failing(lines, "smtp")


def test_wrong_ssh_host_key(environment, capsys, monkeypatch, ssh_server, impostor_ssh_server):
    monkeypatch.setenv("WAREHOUSE_REMOTE_LOG_HOST_KEY", impostor_ssh_server.host_key_fingerprint())
    status, lines, _ = check(capsys)
    outcome = only_failing(lines, "remote_log")
    assert status == 1
    assert ssh_server.host_key_fingerprint() in outcome and impostor_ssh_server.host_key_fingerprint() in outcome


def test_remote_log_down(environment, capsys, monkeypatch, ssh_server):
    monkeypatch.setenv(
        "WAREHOUSE_REMOTE_LOG_FS", ssh_server.url().replace(":{}/".format(ssh_server.port), ":{}/".format(free_port()))
    )
    status, lines, _ = check(capsys)
    assert status == 1 and only_failing(lines, "remote_log") != "ok"


def test_everything_down_is_one_line_each(environment, capsys, monkeypatch):
    dead = free_port()
    monkeypatch.setenv("WAREHOUSE_DATABASE_URL", "postgresql://postgres@127.0.0.1:{}/warehouse".format(dead))
    monkeypatch.setenv("WAREHOUSE_INBOUND_FTP_URL", "ftps://u:p@127.0.0.1:{}/".format(dead))
    monkeypatch.setenv("WAREHOUSE_OUTBOUND_FTP_URL", "ftp://u:p@127.0.0.1:{}/".format(dead))
    monkeypatch.setenv("WAREHOUSE_SMTP_URL", "smtps://u:p@127.0.0.1:{}".format(dead))
    monkeypatch.setenv("WAREHOUSE_REMOTE_LOG_FS", "ssh://u@127.0.0.1:{}/".format(dead))
    status, lines, last = check(capsys)
    assert status == 1 and list(lines) == DEPENDENCIES and "ok" not in lines.values()
    assert last == "warehouse-runner: 5 of 5 dependencies not ok: " + ", ".join(DEPENDENCIES)
