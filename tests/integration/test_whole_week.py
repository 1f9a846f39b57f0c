"""A whole week through the real servers (SPEC §4, §5, §7): ``warehouse-runner poll --at`` each day
against PostgreSQL, FTP and SMTP; Start pressed on the page; a stand-in for the customer's importer.

Mon 7 Dec 2026 completed; Tue 8 Immacolata (a holiday: no file, no alert, not a row); Wed 9 a
rejected file, then the no-file alert; Thu 10 the outbound server refuses the upload, ops retry the
failed day from the command line, the second Start completes; Fri 11 completed; Sat and Sun nothing.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.conftest import at
from tests.fakes import RunningClock
from tests.integration.test_runner_poll import runner  # noqa: F401 (fixture)
from warehouse_core.bootstrap import bootstrap
from warehouse_core.settings import load_settings
from warehouse_devstack.servers import FtpServer, RemoteImporter
from warehouse_runner.jobs import upkeep_tick
from warehouse_web import create_app

WORKING_DAYS = {"2026-12-07": "mon", "2026-12-09": "wed", "2026-12-10": "thu", "2026-12-11": "fri"}


def invoices(day: str):
    """Five invoices of that day in the view, and one that is not: 6 + DD + 6 digits."""
    return ["6{}{:06d}".format(day[8:10], n) for n in range(1, 7)]


def day_file(day: str, valid: bool = True):
    """A Letture file for ``day``: six invoice lines (the sixth not in the view) and one ignored line."""
    lines = ["{}|{}|Frutta, Verdura|{}.50".format(number, n + 1, n + 10) for n, number in enumerate(invoices(day))]
    lines.insert(3, "500000001|1|not ours: ignored|1.00")
    if not valid:
        lines[1] = lines[1].replace("|2|", "|two|")
    name = "Letture{}083000000_{}.txt".format(day.replace("-", ""), len(lines) - 1)
    return name, "\n".join(lines).encode("utf-8")


@pytest.fixture
def week(runner, tmp_path, postgres_server, db_schema, real_store, ftp_server, smtp_server):  # noqa: F811
    outbound = FtpServer(tmp_path / "outbound-root", user="shipper", password="secret-out").start()
    log_folder = tmp_path / "importer"
    view = "week_view_{}".format(uuid.uuid4().hex[:8])
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(
            'CREATE TABLE "{0}"."{1}_source" (invoice_number text PRIMARY KEY, invoice_date date,'
            " customer_code text, customer_name text, delivery_address text)".format(db_schema, view)
        )
        connection.execute('CREATE VIEW "{0}"."{1}" AS SELECT * FROM "{0}"."{1}_source"'.format(db_schema, view))
        for day in WORKING_DAYS:
            for number in invoices(day)[:5]:
                connection.execute(
                    'INSERT INTO "{}"."{}_source" VALUES (%s, %s, %s, %s, %s)'.format(db_schema, view),
                    (number, day, "C" + number[-3:], "Cliente " + number[-3:], "Via Roma " + number[-1]),
                )
    runner.env.update(
        WAREHOUSE_INVOICE_VIEW="{}.{}".format(db_schema, view),
        WAREHOUSE_HOLIDAYS="it",
        WAREHOUSE_OUTBOUND_FTP_URL=outbound.url(),
        WAREHOUSE_REMOTE_LOG_FS="osfs://" + str(log_folder),
        WAREHOUSE_REMOTE_LOG_PATH="importer-{date}.log",
        WAREHOUSE_REMOTE_LOG_INTERVAL="0.2",
        WAREHOUSE_REMOTE_LOG_TIMEOUT="30",
        WAREHOUSE_FTP_TIMEOUT="5",
    )
    log_folder.mkdir()
    clock = RunningClock(at("2026-12-07T10:00"))
    core = bootstrap(load_settings(runner.env), clock=clock)
    client = create_app({"TESTING": True}, core=core).test_client()

    class Week:
        pass

    state = Week()
    state.runner, state.core, state.client, state.clock = runner, core, client, clock
    state.outbound, state.ftp, state.smtp, state.log_folder = outbound, ftp_server, smtp_server, log_folder
    try:
        yield state
    finally:
        core.close()
        outbound.stop()


def poll(week, when: str) -> str:
    done = week.runner("poll", "--at", when)
    assert done.returncode == 0, done.stderr
    return done.stdout


def start_and_work(week, day: str):
    """Start pressed on the page at 11:00, then the session worker until the session is final."""
    week.clock.run_from(at(day + "T11:00"))
    page = week.client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    assert week.client.post("/api/session/start", headers={"X-CSRF-Token": token}).status_code == 202
    importer = RemoteImporter(week.outbound.root, week.log_folder / "importer-{}.log".format(day.replace("-", "")))
    importer.start()
    try:
        assert week.core.run_session.run_pending(lambda seconds: time.sleep(min(seconds, 0.2)) or False) == 1
    finally:
        importer.stop()
    week.core.deliver_outbox(week.clock.now())
    return week.client.get("/api/session").get_json()


def timeline(week, day: str):
    return [(e["kind"], e["actor"]) for e in week.client.get("/api/days/" + day).get_json()["events"]]


def test_a_whole_week(week):
    cli = "cli:" + __import__("getpass").getuser()

    # Monday: the file at 10:00, Start at 11:00, confirmed.
    name, data = day_file("2026-12-07")
    (week.ftp.root / name).write_bytes(data)
    assert "imported: " + name in poll(week, "2026-12-07T10:00")
    assert start_and_work(week, "2026-12-07")["state"] == "completed"
    assert "no-file" not in poll(week, "2026-12-07T19:00")

    # Tuesday, Immacolata: the poll runs, no file comes, no alert goes out.
    assert "nothing to do" in poll(week, "2026-12-08T10:00")
    assert "no-file alert" not in poll(week, "2026-12-08T19:00")

    # Wednesday: a rejected file, then the alert at 19:00 (the day still has no data).
    name, data = day_file("2026-12-09", valid=False)
    (week.ftp.root / name).write_bytes(data)
    assert "rejected: " + name in poll(week, "2026-12-09T10:00")
    assert "no-file alert queued" in poll(week, "2026-12-09T19:00")

    # Thursday: the outbound server refuses the upload; ops retry the day; the second Start completes.
    name, data = day_file("2026-12-10")
    (week.ftp.root / name).write_bytes(data)
    poll(week, "2026-12-10T10:00")
    week.outbound.faults.refuse.add("STOR")
    failed = start_and_work(week, "2026-12-10")
    assert failed["state"] == "failed" and "failed after 3 tries" in failed["detail"]
    week.outbound.faults.refuse.discard("STOR")
    refused = week.runner("session", "retry", "--day", "2026-12-10", "--reason", " ", "--at", "2026-12-10T11:30")
    assert refused.returncode == 1 and refused.stderr.strip().splitlines()[-1].endswith(
        "A retry needs a reason (--reason TEXT): it goes into the day's events and the mail."
    )
    retried = week.runner(
        "session", "retry", "--day", "2026-12-10", "--reason", "outbound FTP was down", "--at", "2026-12-10T11:30"
    )
    assert retried.returncode == 0, retried.stderr
    assert "session for 2026-12-10 is ready again" in retried.stdout
    again = week.runner("session", "retry", "--day", "2026-12-10", "--reason", "twice", "--at", "2026-12-10T11:31")
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1].endswith("is ready, not failed: only a failed day can be retried.")
    assert start_and_work(week, "2026-12-10")["state"] == "completed"

    # Friday: an ordinary day. Saturday and Sunday: the poll is outside its days.
    name, data = day_file("2026-12-11")
    (week.ftp.root / name).write_bytes(data)
    poll(week, "2026-12-11T10:00")
    assert start_and_work(week, "2026-12-11")["state"] == "completed"
    # The last poll of the week runs at its time, as the scheduler runs it: a rehearsal with
    # `poll --at` records no poll for the metrics (cadf908), the scheduler's polls do.
    week.clock.run_from(at("2026-12-11T19:30"))
    assert week.core.ingest_daily_file(at("2026-12-11T19:30")).server_error is None
    for weekend in ("2026-12-12T10:00", "2026-12-13T19:00"):
        assert "skipped" in poll(week, weekend)

    # /days: exactly the four days that had anything, newest first.
    rows = week.client.get("/api/days").get_json()["days"]
    assert [(r["day"], r["state"]) for r in rows] == [
        ("2026-12-11", "completed"),
        ("2026-12-10", "completed"),
        ("2026-12-09", "rejected"),
        ("2026-12-07", "completed"),
    ]
    for row in (rows[0], rows[1], rows[3]):
        assert (row["stored"], row["ignored"], row["not_found"], row["mails"]) == (
            6,
            1,
            1,
            2 if row is not rows[1] else 4,
        )
        assert row["reconciled"] is True, row
        assert row["counts"] == {"file_lines": 7, "stored": 6, "ignored": 1, "valid": 5, "exported": 5, "confirmed": 5}
        assert row["export_file"] == "Spedizioni{}_5.txt".format(row["day"].replace("-", ""))
    assert rows[2]["file"].startswith("Letture20261209") and rows[2]["reconciled"] is None and rows[2]["mails"] == 2
    days_table = week.runner("days")
    assert days_table.returncode == 0 and len(days_table.stdout.strip().splitlines()) == 5

    # The timelines.
    operator = "anonymous@127.0.0.1"
    assert timeline(week, "2026-12-07") == [
        ("file-seen", cli),
        ("file-downloaded", cli),
        ("file-archived", cli),
        ("file-imported", cli),
        ("mail-queued", cli),
        ("file-deleted", cli),
        ("mail-sent", "system"),
        ("session-started", operator),
        ("session-progress", "system"),
        ("session-uploaded", "system"),
        ("session-confirmed", "system"),
        ("mail-queued", "system"),
        ("mail-sent", "system"),
    ]
    wednesday = week.client.get("/api/days/2026-12-09").get_json()
    assert [k for k, _ in timeline(week, "2026-12-09")] == [
        "file-seen",
        "file-downloaded",
        "file-archived",
        "file-rejected",
        "mail-queued",
        "file-deleted",
        "mail-sent",
        "mail-queued",
        "mail-sent",
    ]
    assert wednesday["files"][0]["reasons"] == [{"line": 2, "reason": "quantity 'two' is not a whole number"}]
    thursday = timeline(week, "2026-12-10")
    kinds = [k for k, _ in thursday]
    assert kinds[kinds.index("session-started") :] == [
        "session-started",
        "session-progress",
        "session-failed",
        "mail-queued",
        "mail-sent",
        "session-retried",
        "mail-queued",
        "mail-sent",
        "session-started",
        "session-progress",
        "session-uploaded",
        "session-confirmed",
        "mail-queued",
        "mail-sent",
    ]
    assert ("session-retried", cli) in thursday
    retried_event = [
        e for e in week.client.get("/api/days/2026-12-10").get_json()["events"] if e["kind"] == "session-retried"
    ][0]
    assert retried_event["detail"]["reason"] == "outbound FTP was down"
    assert week.client.get("/api/days/2026-12-08").status_code == 404, "a holiday with nothing is no day"

    # The mails, in the order they went out.
    assert week.smtp.events() == [
        "import-summary",
        "session-completed",
        "import-failed",
        "no-file",
        "import-summary",
        "session-failed",
        "session-retry",
        "session-completed",
        "import-summary",
        "session-completed",
    ]

    # The metrics, on Sunday evening, after the scheduler's dependency checks.
    week.clock.run_from(at("2026-12-13T19:00"))
    upkeep_tick(week.core, week.clock.now())
    text = week.client.get("/metrics").get_data(as_text=True)
    expected = [
        'warehouse_lines_imported_total{status="valid"} 15',
        'warehouse_lines_imported_total{status="not_found"} 3',
        'warehouse_lines_imported_total{status="already_exported"} 0',
        'warehouse_session_state{state="none"} 1',
        "warehouse_poll_failures_total 0",
        "warehouse_outbox_pending 0",
        "warehouse_last_import_timestamp_seconds {}".format(int(at("2026-12-11T10:00").timestamp())),
        "warehouse_poll_last_success_timestamp_seconds {}".format(int(at("2026-12-11T19:30").timestamp())),
    ]
    expected += [
        'warehouse_dependency_up{{dependency="{}"}} 1'.format(name)
        for name in ("database", "inbound_ftp", "outbound_ftp", "smtp", "remote_log")
    ]
    lines = text.splitlines()
    for sample in expected:
        assert sample in lines, sample
    assert float(re.search(r"^warehouse_session_last_duration_seconds (\S+)$", text, re.M).group(1)) >= 0
    assert Path(week.outbound.root / "Spedizioni20261210_5.txt").exists()
