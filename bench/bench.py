"""``make bench``: ingest, export and status latency measured beside their floors, in one run on one
throwaway PostgreSQL cluster. Writes var/bench/latest.json and a dated copy, and prints a table.

Each measured step runs in a child process of its own (``python bench/bench.py step …``), so its
peak RSS is its own. Correctness is checked too: imported and exported counts against the generator.
"""
from __future__ import annotations

import argparse
import datetime as dt
import filecmp
import http.client
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "var" / "bench"
DAY = dt.date(2026, 11, 26)
EXPORT_DAY = dt.date(2026, 11, 27)
NAIVE_DAY = dt.date(2026, 11, 25)
VIEW_INVOICES = 200_000
CATEGORIES = [
    "Frutta", "Verdura", "Frutta Secca", "Latticini", "Carne", "Pesce", "Surgelati", "Bevande", "Pane", "Pasta",
    "Riso", "Olio", "Vino", "Birra", "Acqua", "Caffè", "Tè", "Zucchero", "Farina", "Uova", "Formaggi", "Salumi",
    "Dolci", "Biscotti", "Cereali", "Legumi", "Spezie", "Sale", "Aceto", "Conserve", "Sughi", "Gelati",
    "Snack", "Cioccolato", "Miele", "Marmellate", "Yogurt", "Burro", "Panna", "Latte", "Succhi", "Liquori",
    "Detersivi", "Igiene", "Carta", "Pet Food", "Baby Food", "Bio", "Senza Glutine", "Gastronomia",
]


# --- data ----------------------------------------------------------------------------------


def invoice_number(index: int) -> str:
    return "6{:08d}".format(index)


def generate_file(path: Path, lines: int, seed: int, present_share: float = 0.9, ignored_share: float = 0.05) -> Dict[str, int]:
    """A Letture file: ``ignored_share`` lines not starting with 6, invoices drawn so that about
    ``present_share`` of them are in the view; returns the counts the import must find."""
    rng = random.Random(seed)
    absent_pool = int(VIEW_INVOICES * (1 - present_share) / present_share) + 1
    counts = {"lines": lines, "ignored": 0, "stored": 0, "valid": 0}
    with open(path, "w", encoding="utf-8", newline="") as handle:
        for number in range(lines):
            if rng.random() < ignored_share:
                invoice = "5{:08d}".format(rng.randrange(10 ** 8))
                counts["ignored"] += 1
            else:
                counts["stored"] += 1
                if rng.random() < present_share:
                    invoice = invoice_number(rng.randrange(VIEW_INVOICES))
                    counts["valid"] += 1
                else:
                    invoice = invoice_number(VIEW_INVOICES + rng.randrange(absent_pool))
            categories = []
            for _ in range(rng.randint(1, 3)):
                name = rng.choice(CATEGORIES)
                name = rng.choice([name, name.lower(), name.upper(), " " + name + " ", name.replace(" ", "  ")])
                categories.append(name)
            value = "{}{}".format(rng.randrange(10000), rng.choice(["", ".5", ".25", ".05"]))
            handle.write("{}|{}|{}|{}".format(invoice, rng.randrange(1, 100), ",".join(categories), value))
            if number < lines - 1:
                handle.write("\n")
    final = path.with_name("Letture{}083015123_{}.txt".format(path.stem[-8:], lines - 1))
    path.rename(final)
    counts["path"] = str(final)  # type: ignore[assignment]
    return counts


def create_view(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS public.invoice_source (invoice_number text PRIMARY KEY, invoice_date date NOT NULL,"
            " customer_code text NOT NULL, customer_name text NOT NULL, delivery_address text NOT NULL)"
        )
        connection.execute("TRUNCATE public.invoice_source")
        connection.execute(
            "INSERT INTO public.invoice_source SELECT '6' || lpad(i::text, 8, '0'), date '2026-11-01' + (i %% 25),"
            " 'C' || (i %% 5000), 'Customer ' || (i %% 5000), 'Via Roma ' || (i %% 300) || ', Milano'"
            " FROM generate_series(0, %s) AS i",
            (VIEW_INVOICES - 1,),
        )
        connection.execute(
            "CREATE OR REPLACE VIEW public.invoice_view AS SELECT invoice_number, invoice_date, customer_code,"
            " customer_name, delivery_address FROM public.invoice_source"
        )
        connection.execute("ANALYZE public.invoice_source")


# --- child steps ---------------------------------------------------------------------------


def core_for(url: str, schema: str, data_dir: str, clock: Any = None) -> Any:
    from warehouse_core.bootstrap import bootstrap
    from warehouse_core.settings import Settings

    settings = Settings(
        database_url=url, db_schema=schema, inbound_ftp_url="ftp://x@127.0.0.1:1/", outbound_ftp_url="ftp://x@127.0.0.1:1/",
        remote_log_fs="osfs://" + data_dir, remote_log_path="importer.log", smtp_url="smtp://127.0.0.1:1",
        mail_from="bench@example.com", mail_to="bench@example.com", data_dir=data_dir,
    )
    return bootstrap(settings, clock=clock)


def at_day(day: dt.date) -> dt.datetime:
    from warehouse_core.clock import zone

    return dt.datetime.combine(day, dt.time(10, 0), tzinfo=zone("Europe/Rome"))


def step_ingest(url: str, schema: str, data_dir: str, path: str, day: str) -> Dict[str, Any]:
    core = core_for(url, schema, data_dir)
    began = time.perf_counter()
    with open(path, "rb") as stream:
        summary = core.import_upload(Path(path).name, stream, at_day(dt.date.fromisoformat(day)))
    seconds = time.perf_counter() - began
    core.close()
    return {"seconds": seconds, "stored": summary.stored_lines, "ignored": summary.ignored_lines, "status": summary.status.value}


def step_export(url: str, schema: str, data_dir: str, day: str) -> Dict[str, Any]:
    """The session's export step itself: RunSession writing the day's valid lines to the local file."""
    core = core_for(url, schema, data_dir)
    the_day = dt.date.fromisoformat(day)
    with core.store.unit_of_work() as uow:
        uow.open_session(the_day)
        uow.start_session(the_day, at_day(the_day))
        total = uow.refresh_invoice_statuses(the_day)  # the start's status recompute is not the export
        uow.update_session(the_day, total=total, export_file="Spedizioni_bench_{}.txt".format(total))
    session = core.session_status(the_day)
    began = time.perf_counter()
    session = core.run_session._export(session, lambda seconds: False)
    written = session.processed
    seconds = time.perf_counter() - began
    core.close()
    return {"seconds": seconds, "written": written}


def step_naive(url: str, schema: str, path: str) -> Dict[str, Any]:
    """The naive way: one SELECT per invoice and one INSERT per line and per category link."""
    import psycopg

    from warehouse_core.parsing import ParseTally, inspect, parse_lines

    began = time.perf_counter()
    with open(path, "rb") as stream:
        facts = inspect(stream)
    tally = ParseTally()
    with psycopg.connect(url, options="-c search_path={},public".format(schema)) as connection:
        file_id = connection.execute(
            "INSERT INTO inbound_file (name, day, source, sha256, declared_count, actual_lines, status)"
            " VALUES (%s, %s, 'upload', %s, NULL, %s, 'rejected') RETURNING id",
            (Path(path).name + ".naive", NAIVE_DAY, facts.sha256, facts.line_count),
        ).fetchone()[0]
        with open(path, "rb") as stream:
            for line in parse_lines(stream, facts.encoding, tally):
                found = connection.execute(
                    "SELECT 1 FROM public.invoice_view WHERE invoice_number = %s LIMIT 1", (line.invoice_number,)
                ).fetchone()
                connection.execute(
                    "INSERT INTO invoice_line (file_id, day, line_number, invoice_number, quantity, description, value,"
                    " invoice_status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (file_id, NAIVE_DAY, line.line_number, line.invoice_number, line.quantity, line.description,
                     line.value, "valid" if found else "not_found"),
                )
                for name in line.categories:
                    category = connection.execute(
                        "INSERT INTO category (name) VALUES (%s) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name"
                        " RETURNING id", (name,),
                    ).fetchone()[0]
                    connection.execute(
                        "INSERT INTO invoice_line_category (category_id, file_id, line_number) VALUES (%s, %s, %s)",
                        (category, file_id, line.line_number),
                    )
        connection.rollback()
    return {"seconds": time.perf_counter() - began, "stored": tally.valid_lines}


def step_status_latency(url: str, schema: str, data_dir: str, day: str, requests: int, clients: int) -> Dict[str, Any]:
    """warehouse-web in this process with a session running over ``day``'s lines; clients hit /api/session."""
    import logging

    from waitress import create_server

    from warehouse_web import create_app

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # 8 clients on 8 threads: queueing is the point
    sys.setswitchinterval(0.001)  # as warehouse-web's serve() does

    from warehouse_core.adapters.system_clock import SystemClock

    core = core_for(url, schema, data_dir, clock=SystemClock(None, fixed=at_day(dt.date.fromisoformat(day))))
    app = create_app(core=core)
    server = create_server(app, host="127.0.0.1", port=0, threads=8)
    port = server.effective_port
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    core.start_session(core.clock.now())
    stop = threading.Event()
    from warehouse_runner.jobs import run_session_worker

    worker = threading.Thread(target=run_session_worker, args=(core, stop), daemon=True)
    worker.start()
    time.sleep(1.0)  # the worker is exporting now
    # The clients run in a process of their own, as browsers would: in this one they would
    # compete with the server for the GIL and measure themselves.
    load = run_child("clients", port=port, requests=requests, clients=clients)
    stop.set()
    core.session_wakeup.set()
    worker.join(30)
    server.close()
    core.close()
    return load


def step_clients(port: int, requests: int, clients: int) -> Dict[str, Any]:
    """``clients`` threads, each with a keep-alive connection, sharing ``requests`` GET /api/session."""
    latencies: List[float] = []
    states = set()
    lock = threading.Lock()

    def client(count: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        for _ in range(count):
            began = time.perf_counter()
            connection.request("GET", "/api/session")
            response = connection.getresponse()
            body = json.loads(response.read())
            mine.append(time.perf_counter() - began)
            states.add(body["state"])
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(requests // clients,)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    return {
        "requests": len(latencies),
        "median_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "states": sorted(states),
    }


STEPS = {
    "ingest": step_ingest, "export": step_export, "naive": step_naive, "status": step_status_latency, "clients": step_clients,
}


def child_main(argv: List[str]) -> None:
    name, arguments = argv[0], json.loads(argv[1])
    result = STEPS[name](**arguments)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(name: str, **arguments: Any) -> Dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "step", name, json.dumps(arguments)],
        check=True, stdout=subprocess.PIPE, text=True, cwd=str(ROOT),
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


# --- floors --------------------------------------------------------------------------------


def psql(url: str, command: str) -> float:
    began = time.perf_counter()
    subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", url, "-c", command], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def floor_ingest(url: str, path: str) -> float:
    psql(url, "DROP TABLE IF EXISTS bench_bare; CREATE TABLE bench_bare (a text, b text, c text, d text)")
    return psql(url, "\\copy bench_bare FROM '{}' WITH (FORMAT text, DELIMITER '|')".format(path))


def floor_export(url: str, schema: str, day: dt.date, target: str) -> float:
    query = (
        "SELECT l.invoice_number, v.invoice_date, v.customer_code, v.customer_name, v.delivery_address, l.quantity, l.value"
        " FROM {s}.invoice_line l JOIN public.invoice_view v ON v.invoice_number = l.invoice_number"
        " WHERE l.day = '{d}' AND l.invoice_status = 'valid' ORDER BY l.line_number"
    ).format(s=schema, d=day.isoformat())
    return psql(url, "\\copy ({}) TO '{}' WITH (FORMAT text, DELIMITER '|')".format(query, target))


# --- the run -------------------------------------------------------------------------------


def machine(url: str) -> Dict[str, Any]:
    import psycopg

    with psycopg.connect(url) as connection:
        version = connection.execute("SHOW server_version").fetchone()[0].split()[0]
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
    return {"cpus": os.cpu_count(), "memory_gb": round(memory, 1), "python": platform.python_version(), "postgres": version}


def figure(name: str, lines: int, seconds: float, floor: Optional[float], rss: Optional[float]) -> Dict[str, Any]:
    return {
        "name": name, "lines": lines, "seconds": round(seconds, 3),
        "floor_seconds": round(floor, 3) if floor is not None else None,
        "ratio": round(seconds / floor, 2) if floor else None,
        "peak_rss_mb": round(rss, 1) if rss is not None else None,
    }


def check(condition: bool, what: str, failures: List[str]) -> None:
    if not condition:
        failures.append(what)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--skip-naive", action="store_true", help="leave out the slow naive run (for quick iterations)")
    arguments = parser.parse_args(argv)
    sys.path[:0] = [str(ROOT / "src"), str(ROOT / "devstack")]  # the dev-only servers are not installed
    from warehouse_devstack.servers import PostgresCluster

    work = Path(tempfile.mkdtemp(prefix="warehouse-bench-"))
    os.chmod(str(work), 0o755)
    cluster = None
    url = os.environ.get("WAREHOUSE_TEST_DATABASE_URL")
    try:
        if not url:
            cluster = PostgresCluster(work / "pg").start()
            url = cluster.create_database("bench")
        schema = "bench_" + dt.datetime.now().strftime("%H%M%S")
        data_dir = str(work / "data")
        print("generating data in {} …".format(work), flush=True)
        create_view(url)
        big = generate_file(work / "big-20261126.txt", arguments.lines, seed=1)
        small = generate_file(work / "small-20261125.txt", arguments.small, seed=2)
        export_file = generate_file(work / "export-20261127.txt", arguments.lines, seed=3, present_share=1.0, ignored_share=0.0)
        from warehouse_core.adapters.postgres import PsycopgStore

        store = PsycopgStore(url, schema=schema)
        store.migrate()
        store.close()

        figures, failures = [], []
        print("ingest 1M …", flush=True)
        floor = floor_ingest(url, big["path"])
        ours = run_child("ingest", url=url, schema=schema, data_dir=data_dir, path=big["path"], day=DAY.isoformat())
        check(ours["stored"] == big["stored"] and ours["ignored"] == big["ignored"], "ingest_1m counts", failures)
        figures.append(figure("ingest_1m", arguments.lines, ours["seconds"], floor, ours["peak_rss_mb"]))
        print("  ", figures[-1], flush=True)

        print("ingest 100k …", flush=True)
        floor_small = floor_ingest(url, small["path"])
        ours_small = run_child("ingest", url=url, schema=schema, data_dir=data_dir, path=small["path"], day=NAIVE_DAY.isoformat())
        check(ours_small["stored"] == small["stored"], "ingest_100k counts", failures)
        figures.append(figure("ingest_100k", arguments.small, ours_small["seconds"], floor_small, ours_small["peak_rss_mb"]))
        print("  ", figures[-1], flush=True)

        if not arguments.skip_naive:
            print("naive 100k …", flush=True)
            naive = run_child("naive", url=url, schema=schema, path=small["path"])
            check(naive["stored"] == small["stored"], "naive_100k counts", failures)
            figures.append(figure("naive_100k", arguments.small, naive["seconds"], ours_small["seconds"], naive["peak_rss_mb"]))
            print("  ", figures[-1], flush=True)

        print("export 1M …", flush=True)
        run_child("ingest", url=url, schema=schema, data_dir=data_dir, path=export_file["path"], day=EXPORT_DAY.isoformat())
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("ANALYZE {}.invoice_line".format(schema))
        export_floor = floor_export(url, schema, EXPORT_DAY, str(work / "floor-export.txt"))
        ours_export = run_child("export", url=url, schema=schema, data_dir=data_dir, day=EXPORT_DAY.isoformat())
        check(ours_export["written"] == export_file["valid"], "export_1m counts", failures)
        # Every generated invoice is in the view and no text needs escaping, so the export must be
        # byte for byte what psql wrote for the floor: same lines, same order.
        exported = sorted((Path(data_dir) / "exports" / EXPORT_DAY.isoformat()).glob("*.txt"))
        check(
            len(exported) == 1 and filecmp.cmp(str(exported[0]), str(work / "floor-export.txt"), shallow=False),
            "export_1m identical to the floor's output", failures,
        )
        figures.append(figure("export_1m", arguments.lines, ours_export["seconds"], export_floor, ours_export["peak_rss_mb"]))
        print("  ", figures[-1], flush=True)

        print("status latency …", flush=True)
        with psycopg.connect(url) as connection:
            connection.execute(
                "INSERT INTO {}.work_session (day, state) VALUES (%s, 'ready') ON CONFLICT (day) DO UPDATE SET state = 'ready',"
                " export_file = NULL, total = 0, processed = 0".format(schema), (EXPORT_DAY,)
            )
        latency = run_child(
            "status", url=url, schema=schema, data_dir=data_dir, day=EXPORT_DAY.isoformat(),
            requests=arguments.requests, clients=arguments.clients,
        )
        check("running" in latency["states"], "status_latency measured during a running session", failures)
        figures.append({
            "name": "status_latency", "requests": latency["requests"], "clients": arguments.clients,
            "median_ms": round(latency["median_ms"], 2), "p99_ms": round(latency["p99_ms"], 2),
        })
        report = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(url), "figures": figures}
        write_report(report)
        print_table(report)
        targets(report, failures)
        if failures:
            print("\nFAILED: " + "; ".join(failures))
            return 1
        return 0
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(str(work), ignore_errors=True)


def targets(report: Dict[str, Any], failures: List[str]) -> None:
    by_name = {f["name"]: f for f in report["figures"]}
    check(by_name["ingest_1m"]["ratio"] <= 4.0, "ingest_1m within 4x its floor", failures)
    check(by_name["ingest_1m"]["peak_rss_mb"] <= 150, "ingest peak RSS <= 150 MB", failures)
    check(abs(by_name["ingest_1m"]["peak_rss_mb"] - by_name["ingest_100k"]["peak_rss_mb"]) <= 30, "100k vs 1M RSS within 30 MB", failures)
    check(by_name["export_1m"]["ratio"] <= 2.5, "export_1m within 2.5x its floor", failures)
    check(by_name["status_latency"]["median_ms"] <= 5, "status median <= 5 ms", failures)
    check(by_name["status_latency"]["p99_ms"] <= 20, "status p99 <= 20 ms", failures)


def write_report(report: Dict[str, Any]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2)
    (OUT / "latest.json").write_text(text + "\n")
    (OUT / "{}.json".format(report["date"].replace(":", ""))).write_text(text + "\n")


def print_table(report: Dict[str, Any]) -> None:
    m = report["machine"]
    print("\n{} - {} CPUs, {} GB, Python {}, PostgreSQL {}".format(report["date"], m["cpus"], m["memory_gb"], m["python"], m["postgres"]))
    print("{:<16} {:>9} {:>10} {:>12} {:>10} {:>8} {:>12}".format("step", "lines", "seconds", "lines/s", "floor s", "ratio", "peak RSS MB"))
    for f in report["figures"]:
        if f["name"] == "status_latency":
            print("{:<16} {} requests, {} clients: median {} ms, p99 {} ms".format(f["name"], f["requests"], f["clients"], f["median_ms"], f["p99_ms"]))
            continue
        print("{:<16} {:>9} {:>10} {:>12} {:>10} {:>8} {:>12}".format(
            f["name"], f["lines"], f["seconds"], int(f["lines"] / f["seconds"]), f["floor_seconds"] or "-", f["ratio"] or "-", f["peak_rss_mb"]))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "step":
        child_main(sys.argv[2:])
    else:
        sys.exit(main())
