"""warehouse-web under load on loopback (SPEC §9, issue 20): 20 clients polling GET /api/session,
as 20 open pages do, bounded in count and time. Under this load waitress logged 12,648 "Task queue
depth" warnings in 30 s with 8 threads. Sized (docs/ops.md) and filtered, the log stays readable."""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Dict, Tuple

from warehouse_devstack.servers import free_port, wait_for_port

CLIENTS = 20
REQUESTS_EACH = 50


def hammer(port: int, clients: int = CLIENTS, each: int = REQUESTS_EACH) -> Tuple[Counter, float]:
    """``clients`` threads, each sending ``each`` GET /api/session on a new connection (a page's
    poll): the statuses seen (or the error's name) and the seconds the whole took."""
    statuses: Counter = Counter()
    lock = threading.Lock()

    def client() -> None:
        for _ in range(each):
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.request("GET", "/api/session")
                response = connection.getresponse()
                response.read()
                outcome = str(response.status)
                connection.close()
            except OSError as error:
                outcome = type(error).__name__
            with lock:
                statuses[outcome] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return statuses, time.monotonic() - started


def warnings_in(log: str) -> Dict[str, int]:
    counted: Dict[str, int] = Counter()
    for line in log.splitlines():
        if " WARNING " in line or " ERROR " in line:
            counted[line.split(": ", 1)[0].split(" ", 3)[-1]] += 1
    return dict(counted)


def test_twenty_clients_polling_the_status_are_all_served_and_the_log_stays_readable(
    tmp_path, postgres_server, db_schema, real_store, service_environment
):
    env = service_environment(
        WAREHOUSE_DATABASE_URL=postgres_server,
        WAREHOUSE_DB_SCHEMA=db_schema,
        WAREHOUSE_INBOUND_FTP_URL="ftp://warehouse:secret@127.0.0.1:1/",
        WAREHOUSE_OUTBOUND_FTP_URL="ftp://warehouse:secret@127.0.0.1:1/out",
        WAREHOUSE_REMOTE_LOG_FS="osfs://" + str(tmp_path),
        WAREHOUSE_REMOTE_LOG_PATH="importer.log",
        WAREHOUSE_SMTP_URL="smtp://127.0.0.1:1",
        WAREHOUSE_MAIL_FROM="warehouse@example.com",
        WAREHOUSE_MAIL_TO="ops@example.com",
        WAREHOUSE_DATA_DIR=str(tmp_path / "var"),
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "warehouse_web", "--port", str(port), "--no-scheduler"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, timeout=60)
        statuses, seconds = hammer(port)
    finally:
        process.terminate()
        _, log = process.communicate(timeout=60)
    assert statuses == {"200": CLIENTS * REQUESTS_EACH}, statuses
    assert seconds < 60, "the whole load is served within the minute the filter counts in"
    counted = warnings_in(log)
    # Sized for this load (docs/ops.md: 8 threads queued 326 of these 1000, 24 threads none on a quiet
    # machine; a figure of the machine's speed, so not asserted here: under libfaketime beside another
    # run, a thread still finishing its reply was once counted busy). What the log must show whatever
    # the machine: the queue said at most once in the minute, with its count. Anything else likewise.
    assert counted.get("waitress.queue", 0) <= 1, counted
    assert all(count <= 2 for count in counted.values()), counted
