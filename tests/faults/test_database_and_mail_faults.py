"""Scenarios 5 and 6: PostgreSQL restarted during an import; SMTP down for several polls."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, VALID_SAMPLE
from tests.faults.conftest import query, wait_until
from warehouse_devstack.servers import SmtpServer, free_port, load_invoice_view


@pytest.fixture
def own_cluster():
    """A cluster of this test's own: it gets restarted."""
    from warehouse_devstack.servers import PostgresCluster

    directory = Path(tempfile.mkdtemp(prefix="warehouse-pg-restart-"))
    cluster = PostgresCluster(directory).start()
    url = cluster.create_database("restart")
    load_invoice_view(url, SAMPLES / "invoice_view.sql")
    yield cluster, url
    cluster.stop()
    shutil.rmtree(str(directory), ignore_errors=True)


@pytest.mark.fault("5. PostgreSQL restarted during an import", "pg_ctl restart -m fast while the insert waits")
def test_database_restart_mid_import(service, own_cluster, ftp_server, smtp_server, outcome):
    import psycopg

    cluster, url = own_cluster
    service.env["WAREHOUSE_DATABASE_URL"] = url
    assert service.run("migrate").returncode == 0
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    schema = service.env["WAREHOUSE_DB_SCHEMA"]
    blocker = psycopg.connect(url)
    blocker.execute('LOCK TABLE "{}".invoice_line IN EXCLUSIVE MODE'.format(schema))
    process = service.start("poll", "--at", "2026-11-26T10:00")
    with psycopg.connect(url, autocommit=True) as watcher:
        wait_until(
            lambda: watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()[
                0
            ],
            what="the import to wait on invoice_line",
        )
    cluster.restart()
    blocker.close()
    output = service.wait(process)
    assert "poll failed" in output or process.returncode != 0
    with psycopg.connect(url, autocommit=True) as check:
        counts = check.execute(
            'SELECT (SELECT count(*) FROM "{0}".inbound_file), (SELECT count(*) FROM "{0}".invoice_line)'.format(schema)
        ).fetchone()
    assert counts == (0, 0), "half an import was left behind"
    assert ftp_server.files() == [VALID_SAMPLE.name]
    result = service.run("poll", "--at", "2026-11-26T10:30")
    assert result.returncode == 0, result.stderr
    with psycopg.connect(url, autocommit=True) as check:
        assert check.execute('SELECT count(*) FROM "{}".invoice_line'.format(schema)).fetchone() == (8,)
    assert ftp_server.files() == []
    outcome("nothing half-inserted; the next poll imported the file")


@pytest.mark.fault("6. SMTP down for several polls", "nothing listens on the SMTP port")
def test_mail_waits_while_smtp_is_down(service, real_store, ftp_server, tmp_path, outcome):
    port = free_port()
    service.env["WAREHOUSE_SMTP_URL"] = "smtp://127.0.0.1:{}".format(port)
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    assert service.run("poll", "--at", "2026-11-26T10:00").returncode == 0
    for moment in ("2026-11-26T19:00", "2026-11-26T19:30"):
        assert service.run("poll", "--at", moment).returncode == 0
    other = "Letture20261127083015123_9.txt"
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root / other))
    service.run("poll", "--at", "2026-11-27T10:00")
    failed = service.run("send-mail", "--at", "2026-11-27T10:05")
    assert failed.returncode == 1 and "not delivered" in failed.stderr
    waiting = query(real_store, "SELECT event, attempts FROM mail_outbox WHERE sent_at IS NULL ORDER BY id")
    assert [event for event, _ in waiting] == ["import-summary", "import-summary"]
    assert all(attempts >= 1 for _, attempts in waiting)
    smtp = SmtpServer(port=port).start()
    try:
        with real_store.connection() as connection:
            connection.execute("UPDATE mail_outbox SET next_attempt_at = NULL")  # the backoff has passed
        assert service.run("send-mail", "--at", "2026-11-27T10:06").returncode == 0
        assert service.run("send-mail", "--at", "2026-11-27T10:07").returncode == 0
        assert smtp.events() == ["import-summary", "import-summary"]
        assert query(real_store, "SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL") == [(0,)]
    finally:
        smtp.stop()
    outcome("mails waited in the outbox; each delivered exactly once")
