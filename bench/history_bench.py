"""How fast the history pages render with a year of days and a million-line day in them.

Not a test (no timing assertion): a measurement for the report. It fills one schema of a throwaway
PostgreSQL cluster (or WAREHOUSE_TEST_DATABASE_URL) with 365 days of files, sessions, mails and
events, one of them a day of 1,000,000 stored lines, then times the pages through the Flask test
client against the real store. Writes var/bench/history.json and prints the figures.

    .venv/bin/python bench/history_bench.py [--days 365] [--big-lines 1000000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "devstack")]
from warehouse_core.adapters.postgres.partitions import attach_partitions, create_partitions  # noqa: E402

OUT = ROOT / "var" / "bench"
LAST_DAY = dt.date(2026, 11, 26)
SCHEMA = "history_bench"


def fill(url: str, days: int, big_lines: int) -> dt.date:
    """A year of ordinary days (one imported file, a completed session, two mails, 13 events each)
    and, in the middle, one day with ``big_lines`` stored lines; the day of the big one."""
    big_day = LAST_DAY - dt.timedelta(days=days // 2)
    with psycopg.connect(url, autocommit=True, options="-c search_path={},public".format(SCHEMA)) as connection:
        with connection.transaction():
            connection.execute(
                "INSERT INTO inbound_file (name, day, source, sha256, declared_count, actual_lines, status, archive_path,"
                " received_at, stored_lines, ignored_lines, not_found_lines, valid_lines)"
                " SELECT 'Letture' || to_char(d, 'YYYYMMDD') || '083000000_' || n, d, 'ftp', md5(d::text), n, n + 1,"
                " 'imported', to_char(d, 'YYYY-MM-DD') || '/x.txt', d + time '10:00', n, 1, n / 10, n - n / 10"
                " FROM (SELECT (%(last)s::date - g)::date AS d,"
                "  CASE WHEN (%(last)s::date - g) = %(big)s::date THEN %(big_lines)s ELSE 5000 END AS n"
                "  FROM generate_series(0, %(days)s - 1) AS g) AS days",
                {"last": LAST_DAY, "days": days, "big": big_day, "big_lines": big_lines},
            )
            connection.execute(
                "INSERT INTO work_session (day, state, phase, total, processed, started_at, finished_at, export_file)"
                " SELECT day, 'completed', 'watching', valid_lines, valid_lines, day + time '11:00', day + time '11:05',"
                " 'Spedizioni' || to_char(day, 'YYYYMMDD') || '_' || valid_lines || '.txt' FROM inbound_file"
            )
            connection.execute(
                "INSERT INTO mail_outbox (event, day, subject, body_text, body_html, created_at, sent_at, attempts)"
                " SELECT e, day, 'subject', repeat('text ', 200), repeat('<p>html</p>', 100), day + time '10:00',"
                " day + time '10:01', 1 FROM inbound_file, unnest(ARRAY['import-summary', 'session-completed']) AS e"
            )
            connection.execute(
                "INSERT INTO event (day, at, kind, actor, detail)"
                " SELECT day, day + time '10:00' + k * interval '1 minute', kind, 'system', jsonb_build_object('file', name)"
                " FROM inbound_file, unnest(ARRAY['file-seen', 'file-downloaded', 'file-archived', 'file-imported',"
                "  'mail-queued', 'file-deleted', 'mail-sent', 'session-started', 'session-progress', 'session-uploaded',"
                "  'session-confirmed', 'mail-queued', 'mail-sent']) WITH ORDINALITY AS kinds(kind, k)"
            )
            # The big day's lines in partitions of their own, as an import stores them.
            [file_id] = connection.execute("SELECT id FROM inbound_file WHERE day = %s", (big_day,)).fetchone()
            lines, _ = create_partitions(connection, big_day, file_id)
            connection.execute(
                psycopg.sql.SQL(
                    "INSERT INTO {} (file_id, line_number, day, invoice_number, quantity, description, value,"
                    " invoice_status)"
                    " SELECT f.id, g, f.day, '6' || lpad(g::text, 8, '0'), 1, 'Frutta', 1.5, 'valid'"
                    " FROM inbound_file AS f, generate_series(1, f.stored_lines) AS g WHERE f.id = %s"
                ).format(psycopg.sql.Identifier(lines)),
                (file_id,),
            )
            attach_partitions(connection, big_day, file_id)
        connection.execute("VACUUM ANALYZE")
    return big_day


def timed(client: Any, url: str, rounds: int) -> Dict[str, Any]:
    client.get(url)  # warm: templates compiled, pool connected
    samples: List[float] = []
    size = 0
    for _ in range(rounds):
        began = time.perf_counter()
        answer = client.get(url)
        samples.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, (url, answer.status_code)
        size = len(answer.data)
    return {
        "url": url,
        "rounds": rounds,
        "median_ms": round(statistics.median(samples), 2),
        "p90_ms": round(sorted(samples)[int(0.9 * (len(samples) - 1))], 2),
        "p99_ms": round(sorted(samples)[int(0.99 * (len(samples) - 1))], 2),
        "bytes": size,
    }


def store_only(core: Any, big_day: dt.date, rounds: int) -> Dict[str, Any]:
    """The database's share of /days: the use case's reads without the page."""
    from warehouse_core.usecases.history import day_detail, list_days

    samples: List[float] = []
    for _ in range(rounds + 1):
        began = time.perf_counter()
        list_days(core.store)
        day_detail(core.store, big_day)
        samples.append((time.perf_counter() - began) * 1000)
    samples = samples[1:]
    return {
        "url": "(store: list_days + day_detail)",
        "rounds": rounds,
        "median_ms": round(statistics.median(samples), 2),
        "p90_ms": round(sorted(samples)[int(0.9 * (len(samples) - 1))], 2),
        "bytes": 0,
    }


def measure(url: str, work: Path, days: int, big_lines: int, rounds: int) -> Dict[str, Any]:
    """The schema filled, then each page timed ``rounds`` times through the Flask test client."""
    from warehouse_core.adapters.postgres import PsycopgStore
    from warehouse_core.bootstrap import bootstrap
    from warehouse_core.settings import Settings
    from warehouse_devstack.servers import load_invoice_view
    from warehouse_web import create_app

    load_invoice_view(url, ROOT / "devstack" / "warehouse_devstack" / "samples" / "invoice_view.sql")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP SCHEMA IF EXISTS {} CASCADE".format(SCHEMA))
    store = PsycopgStore(url, schema=SCHEMA)
    store.migrate()
    began = time.perf_counter()
    big_day = fill(url, days, big_lines)
    filled = time.perf_counter() - began
    settings = Settings(
        database_url=url,
        db_schema=SCHEMA,
        inbound_ftp_url="ftp://u:p@127.0.0.1:21/",
        outbound_ftp_url="ftp://u:p@127.0.0.1:21/",
        remote_log_fs="osfs:///tmp",
        remote_log_path="x.log",
        smtp_url="smtp://127.0.0.1:25",
        mail_from="a@example.com",
        mail_to="b@example.com",
        data_dir=str(work / "var"),
    )
    core = bootstrap(settings, store=store)
    try:
        client = create_app({"TESTING": True}, core=core).test_client()
        figures = [
            # The cheapest page of the same app, same store and same load: the floor to read the rest against.
            timed(client, "/api/session", rounds),
            store_only(core, big_day, rounds),
            timed(client, "/days", rounds),
            timed(client, "/days?before={}".format(big_day + dt.timedelta(days=30)), rounds),
            timed(client, "/api/days?limit=366", rounds),
            timed(client, "/days/{}".format(big_day), rounds),
            timed(client, "/api/days/{}".format(big_day), rounds),
            timed(client, "/metrics", rounds),
        ]
        with store.connection() as connection:
            lines = connection.execute("SELECT count(*) FROM invoice_line").fetchone()[0]
    finally:
        core.close()
    return {"big_day": big_day, "lines": lines, "filled": filled, "figures": figures}


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--big-lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    arguments = parser.parse_args(argv)

    from warehouse_devstack.servers import PostgresCluster

    cluster = None
    url = os.environ.get("WAREHOUSE_TEST_DATABASE_URL")
    work = Path(tempfile.mkdtemp(prefix="warehouse-history-bench-"))
    if not url:
        os.chmod(str(work), 0o755)
        cluster = PostgresCluster(work / "pg").start()
        url = cluster.create_database("bench")
    try:
        measured = measure(url, work, arguments.days, arguments.big_lines, arguments.rounds)
    finally:
        if cluster is not None:
            cluster.stop()
    big_day, lines, filled, figures = (measured[k] for k in ("big_day", "lines", "filled", "figures"))
    report = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "days": arguments.days,
        "big_day": big_day.isoformat(),
        "lines_in_database": lines,
        "fill_seconds": round(filled, 1),
        "figures": figures,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "history.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(
        "{} days, {} stored lines ({} on {}), filled in {:.1f} s".format(
            arguments.days, lines, arguments.big_lines, big_day, filled
        )
    )
    for figure in figures:
        print("  {url:<40} median {median_ms:>8.2f} ms   p90 {p90_ms:>8.2f} ms   {bytes:>8} bytes".format(**figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
