"""``make run``: the whole product on this machine, with sample data, for a new user to click through.

Under ``var/``: a PostgreSQL cluster (kept between runs) with the sample invoice view, two FTP
servers (inbound with today's sample file, outbound), an SMTP server keeping every mail as a
file, a stand-in for the customer's importer writing the remote log, and warehouse-web with its
scheduler. Ctrl-C stops every part. The servers are the ones the tests use.

The state is kept between runs, so a second run the same day finds the day as the first left it;
``--fresh`` starts the day from nothing (``--fresh --no-sample``: an empty day, to try an upload).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Dict, List, Optional

from warehouse_core.bootstrap import Core, bootstrap
from warehouse_core.model import SessionState
from warehouse_core.settings import Settings, load_settings
from warehouse_devstack.servers import FtpServer, PostgresCluster, RemoteImporter, SmtpServer, load_invoice_view
from warehouse_runner.signals import Interrupted, interruptible, stopped_line

# What --fresh empties under var/: the day's mail, FTP folders, archive and exports, remote log.
DEMO_STATE_FOLDERS = ("mail", "ftp/inbound", "ftp/outbound", "data", "remote")
SAMPLES = Path(__file__).resolve().parent / "samples"
VALID_SAMPLE = SAMPLES / "Letture20261126083015123_9.txt"
log = logging.getLogger("warehouse_devstack")


def todays_sample_name(now: dt.datetime) -> str:
    """The valid sample's name, dated today (the creation time keeps the sample's 08:30:15.123)."""
    return "Letture{}083015123_9.txt".format(now.strftime("%Y%m%d"))


def demo_environment(
    var: Path, database_url: str, inbound: FtpServer, outbound: FtpServer, smtp: SmtpServer
) -> Dict[str, str]:
    return {
        "WAREHOUSE_DATABASE_URL": database_url,
        "WAREHOUSE_INBOUND_FTP_URL": inbound.url(),
        "WAREHOUSE_OUTBOUND_FTP_URL": outbound.url(),
        "WAREHOUSE_REMOTE_LOG_FS": "osfs://" + str(var / "remote"),
        "WAREHOUSE_REMOTE_LOG_PATH": "importer-{date}.log",
        "WAREHOUSE_REMOTE_LOG_INTERVAL": "1",
        "WAREHOUSE_REMOTE_LOG_TIMEOUT": "120",
        "WAREHOUSE_SMTP_URL": smtp.url(),
        "WAREHOUSE_MAIL_FROM": "warehouse@demo.invalid",
        "WAREHOUSE_MAIL_TO": "operators@demo.invalid",
        "WAREHOUSE_DATA_DIR": str(var / "data"),
        # The demo polls at any hour of any day, so that it works whenever it is tried.
        "WAREHOUSE_POLL_WINDOW": "00:00-23:59",
        "WAREHOUSE_POLL_DAYS": "mon-sun",
        "WAREHOUSE_SECRET_KEY": "demo-only-not-secret",
    }


def clear_demo_files(var: Path) -> None:
    for folder in DEMO_STATE_FOLDERS:
        shutil.rmtree(str(var / folder), ignore_errors=True)


def drop_service_tables(database_url: str, schema: str) -> None:
    """The service's schema goes; the start's migration makes it again, empty. Only the schema the
    demo's service uses: the invoice view, and anything else in that database, stay."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    log.info("--fresh: dropped schema %s and the demo's files: today starts empty", schema)


def service_schema() -> str:
    return os.environ.get("WAREHOUSE_DB_SCHEMA") or str(Settings.model_fields["db_schema"].default)


def today_lines(core: Core, no_sample: bool, waiting: Optional[str]) -> List[str]:
    """The banner's word on today, and the way to an empty day when an upload would be refused.

    ``waiting`` is today's file while it is still on the inbound server: the start-up poll runs on
    the scheduler's thread as the banner is printed, and the page must not look stuck at none."""
    status = core.session_status()
    day = status.day.isoformat()
    if status.state is SessionState.NONE and waiting:
        word = "none yet: the start-up poll is taking {} from the inbound FTP server; the page shows today's state as soon as it is imported".format(
            waiting
        )
    elif status.state is SessionState.NONE:
        word = "none: no file for today on the inbound FTP server (copy one into its folder above, then poll)"
    else:
        word = status.state.value
    lines = [" Today           {}: {}".format(day, word)]
    if no_sample and status.state is not SessionState.NONE:
        log.warning(
            "today already has data from an earlier run: a manual upload is refused; --fresh starts an empty day"
        )
        lines.append(' Upload refused: today has data; make run RUN_ARGS="--fresh --no-sample" starts an empty day')
    return lines


def todays_file_waiting(var: Path, core: Core) -> Optional[str]:
    """Today's Letture file, when it is still in the inbound FTP server's folder."""
    today = core.clock.now().strftime("%Y%m%d")
    waiting = sorted(path.name for path in (var / "ftp" / "inbound").glob("Letture{}*.txt".format(today)))
    return waiting[0] if waiting else None


def write_env_file(path: Path, values: Dict[str, str]) -> None:
    lines = ["# Written by make run: the demo stack's configuration (regenerated at every start)."]
    lines += ["{}={}".format(key, value) for key, value in sorted(values.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


def parser() -> argparse.ArgumentParser:
    """The options of ``make run RUN_ARGS="…"``."""
    parser = argparse.ArgumentParser(prog="make run", description=__doc__)
    parser.add_argument("--var", type=Path, default=Path("var"), help="where the stack keeps its state (default ./var)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--timezone", default="Europe/Rome")
    parser.add_argument("--no-sample", action="store_true", help="start with an empty inbound folder")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start today from nothing: drop the service's tables, empty the mail, FTP, archive and remote log folders",
    )
    parser.add_argument(
        "--importer-delay", type=float, default=2.0, help="seconds the stand-in importer takes per file"
    )
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    arguments = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("mail.log", "pyftpdlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    began = time.monotonic()
    var = arguments.var.resolve()
    var.mkdir(parents=True, exist_ok=True)
    if arguments.fresh:
        clear_demo_files(var)
    # Until warehouse-web serves, Ctrl-C (or SIGTERM) stops the parts started so far, with one line.
    with interruptible():
        try:
            return start_and_serve(arguments, var, began)
        except Interrupted as interrupted:
            print(stopped_line("make run", interrupted), file=sys.stderr)
            return 0


def start_and_serve(arguments: argparse.Namespace, var: Path, began: float) -> int:
    with ExitStack() as stack:
        database_url = os.environ.get("WAREHOUSE_DATABASE_URL")
        if database_url:
            log.info("using the PostgreSQL server of WAREHOUSE_DATABASE_URL")
        else:
            cluster = PostgresCluster(var / "postgres").start()
            stack.callback(cluster.stop)
            database_url = cluster.create_database("warehouse")
        load_invoice_view(database_url, SAMPLES / "invoice_view.sql")
        if arguments.fresh:
            drop_service_tables(database_url, service_schema())
        inbound = FtpServer(var / "ftp" / "inbound", user="inbound", password="demo-inbound").start()
        stack.callback(inbound.stop)
        outbound = FtpServer(var / "ftp" / "outbound", user="outbound", password="demo-outbound").start()
        stack.callback(outbound.stop)
        smtp = SmtpServer(var / "mail").start()
        stack.callback(smtp.stop)
        environment = demo_environment(var, database_url, inbound, outbound, smtp)
        environment["WAREHOUSE_TIMEZONE"] = arguments.timezone
        env_file = var / "demo.env"
        write_env_file(env_file, environment)
        os.environ.update(environment)
        core = bootstrap(load_settings())
        # Today is the service's today (WAREHOUSE_CLOCK_START moves it in the tests).
        today = core.clock.now()
        importer = RemoteImporter(
            var / "ftp" / "outbound",
            var / "remote" / "importer-{}.log".format(today.strftime("%Y%m%d")),
            delay=arguments.importer_delay,
        ).start()
        stack.callback(importer.stop)
        sample = inbound.root / todays_sample_name(today)
        if not arguments.no_sample and not sample.exists():
            shutil.copy(str(VALID_SAMPLE), str(sample))
        return serve_web(core, arguments, env_file, var, began)


def serve_web(core: Core, arguments: argparse.Namespace, env_file: Path, var: Path, began: float) -> int:
    from warehouse_devstack import demo
    from warehouse_web import create_app
    from warehouse_web.cli import serve

    app = create_app(core=core)
    demo.install(app, var / "mail")

    def banner(port: int) -> None:
        url = "http://{}:{}/".format(arguments.host, port)
        runner = Path(sys.executable).parent / "warehouse-runner"
        print(
            "\n".join(
                [
                    "",
                    "=" * 72,
                    " Warehouse invoice service: the demo stack is up ({:.1f} s)".format(time.monotonic() - began),
                    "",
                    " Open            {}".format(url),
                    " Database        {}".format(os.environ["WAREHOUSE_DATABASE_URL"]),
                    " Inbound FTP     {} (folder {})".format(
                        os.environ["WAREHOUSE_INBOUND_FTP_URL"].split("@")[-1], var / "ftp" / "inbound"
                    ),
                    " Outbound FTP    {} (folder {})".format(
                        os.environ["WAREHOUSE_OUTBOUND_FTP_URL"].split("@")[-1], var / "ftp" / "outbound"
                    ),
                    " Mail            {} (kept in {})".format(os.environ["WAREHOUSE_SMTP_URL"], var / "mail"),
                    " Remote log      {}".format(var / "remote"),
                    " Configuration   {}".format(env_file),
                    *today_lines(core, arguments.no_sample, todays_file_waiting(var, core)),
                    "",
                    " Poll now:       the button in the page's demo panel, or",
                    "                 WAREHOUSE_CONFIG={} {} poll".format(env_file, runner),
                    " Stop:           Ctrl-C",
                    "=" * 72,
                    "",
                ]
            ),
            flush=True,
        )

    return serve(app, core, arguments.host, arguments.port, on_ready=banner)
