"""``warehouse-runner``: the daemon, and ``poll``, ``import``, ``send-mail``, ``migrate``, ``check``, ``days``, ``session retry``."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional

from warehouse_core.adapters.system_clock import SystemClock
from warehouse_core.audit import cli_actor
from warehouse_core.bootstrap import Core, bootstrap
from warehouse_core.errors import Conflict, InvalidArgument, Refusal, WarehouseError
from warehouse_core.model import Delivery, FileStatus, SessionState
from warehouse_core.redact import REDACTOR
from warehouse_core.settings import load_settings
from warehouse_core.usecases.history import MAX_PAGE_SIZE, PAGE_SIZE, list_days, page_limit
from warehouse_runner.jobs import check_dependencies_now, run_scheduler, run_session_worker
from warehouse_runner.quiet_logs import RepeatFilter
from warehouse_runner.signals import Interrupted, interruptible, stopped_line

log = logging.getLogger("warehouse_runner")
PROGRAM = "warehouse-runner"


def configure_logging() -> None:
    """INFO and up to stderr; a warning that repeats is said at most once a minute, with its count."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:  # the stderr handler, not a test's capture
        if getattr(handler, "stream", None) is not sys.stderr:
            continue
        if not any(isinstance(existing, RepeatFilter) for existing in handler.filters):
            handler.addFilter(RepeatFilter())
        REDACTOR.install(handler)  # whatever a library logs, no secret (SPEC §8)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=PROGRAM, description="The warehouse invoice service's daemon and commands.")
    commands = top.add_subparsers(dest="command")
    poll = commands.add_parser(
        "poll", help="poll the inbound FTP server now, whatever the window and days, then deliver the outbox"
    )
    poll.add_argument(
        "--at", type=_local_time, help="act as if at this local time (ISO, e.g. 2026-11-26T19:00), with every rule"
    )
    upload = commands.add_parser("import", help="import a file for today, as a manual upload")
    upload.add_argument("file", type=Path)
    send_mail = commands.add_parser("send-mail", help="deliver the outbox once")
    send_mail.add_argument("--at", type=_local_time, help="act as if at this local time (ISO): which mails are due")
    commands.add_parser("migrate", help="create or upgrade the database schema")
    commands.add_parser(
        "check", help="try every dependency now: one line each, ok or why not; exit 0 only if all are ok"
    )
    days = commands.add_parser("days", help="the history of the days, newest first (as GET /days)")
    days.add_argument("--limit", type=_page_limit, default=PAGE_SIZE, help="how many days (default %(default)s)")
    days.add_argument("--before", type=dt.date.fromisoformat, help="only days before this one (YYYY-MM-DD)")
    session = commands.add_parser("session", help="ops' audited actions on a day's session")
    session_commands = session.add_subparsers(dest="session_command")
    retry = session_commands.add_parser("retry", help="turn a failed day back to ready (audited, mailed)")
    retry.add_argument("--day", type=dt.date.fromisoformat, required=True, help="the failed day (YYYY-MM-DD)")
    retry.add_argument("--reason", required=True, help="why: goes into the day's events and the mail")
    retry.add_argument(
        "--redeliver",
        action="store_true",
        help="retry even though the failed run had put its file on the outbound server",
    )
    retry.add_argument("--at", type=_local_time, help="act as if at this local time (ISO)")
    close = session_commands.add_parser(
        "close",
        help="close a day that is not final, or ask again whether a closed day's file was delivered (audited)",
    )
    close.add_argument("--day", type=dt.date.fromisoformat, required=True, help="the day (YYYY-MM-DD)")
    close.add_argument("--reason", required=True, help="why: goes into the day's events")
    close.add_argument("--at", type=_local_time, help="act as if at this local time (ISO)")
    return top


def _local_time(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not an ISO date and time: {!r}".format(text)) from None


def _page_limit(text: str) -> int:
    try:
        return page_limit(text)
    except InvalidArgument:
        raise argparse.ArgumentTypeError("not a whole number from 1 to {}: {!r}".format(MAX_PAGE_SIZE, text)) from None


def main(argv: Optional[List[str]] = None) -> int:
    arguments = parser().parse_args(argv)
    configure_logging()
    # Until the daemon installs its own stop handlers, SIGTERM and Ctrl-C end the start-up or the
    # command at once, with one line.
    with interruptible():
        try:
            core = start(arguments)
        except Interrupted as interrupted:
            return stopped(arguments, interrupted)
        except WarehouseError as error:
            return fail(str(error))
        except Exception as error:  # a server that does not answer at start
            return fail("cannot start: {}".format(_one_line(error)))
        try:
            return run_command(core, arguments)
        except Interrupted as interrupted:
            return stopped(arguments, interrupted)
        except Refusal as error:  # worded from messages.txt, as the page words it
            return fail(core.sentences.text(error.code, **error.values))
        except WarehouseError as error:
            return fail(str(error))
        except Exception as error:
            log.exception("%s failed", arguments.command or "daemon")
            return fail("{} failed: {}".format(arguments.command or "daemon", _one_line(error)))
        finally:
            core.close()


def stopped(arguments: argparse.Namespace, interrupted: Interrupted) -> int:
    """The daemon asked to stop before its own handlers were in place has done what was asked: 0.
    A command stopped before its end has not done its work: 128 + the signal, as a shell says."""
    if arguments.command is None:
        print(stopped_line(PROGRAM, interrupted), file=sys.stderr)
        return 0
    fail("{} interrupted by {}: not done".format(arguments.command, interrupted.name))
    return 128 + interrupted.signum


# The commands that read the customer's invoice view, and check it at start: the daemon (polls and
# sessions), poll and import. migrate does not: a DBA prepares the schema before the view exists.
READS_THE_VIEW = (None, "poll", "import")


def start(arguments: argparse.Namespace) -> Core:
    settings = load_settings()
    REDACTOR.add_settings(settings)
    fixed = getattr(arguments, "at", None)
    # Without --at, the composition root builds the clock (WAREHOUSE_CLOCK_START included).
    clock = SystemClock(settings.zone, fixed=fixed) if fixed is not None else None
    # check changes nothing, and must report a database that is down rather than stop on it.
    starting = arguments.command != "check"  # check reports the view's columns as one of its lines
    return bootstrap(settings, clock=clock, migrate=starting, check_view=arguments.command in READS_THE_VIEW)


def run_command(core: Core, arguments: argparse.Namespace) -> int:
    now = core.clock.now()
    if arguments.command == "migrate":
        print("schema {} is up to date".format(core.settings.db_schema))
        return 0
    if arguments.command == "check":
        return check(core)
    if arguments.command == "poll":
        # Without --at: now, whatever the window and days (SPEC §9); with --at, every rule.
        report = core.ingest_daily_file(
            now, actor=command_actor(), any_time=arguments.at is None, pretend=arguments.at is not None
        )
        delivery = core.deliver_outbox(now)
        if report.server_error:
            return fail(
                "poll: the inbound server could not be read: {}; mails sent: {}".format(
                    report.server_error, delivery.sent
                )
            )
        print("{}; mails sent: {}".format(report.describe(), delivery.sent))
        return 0
    if arguments.command == "send-mail":
        delivery = core.deliver_outbox(now)
        print("mails sent: {}, failed: {}".format(delivery.sent, delivery.failed))
        return 0 if delivery.failed == 0 else 1
    if arguments.command == "import":
        return import_file(core, arguments.file, now)
    if arguments.command == "days":
        return print_days(core, arguments.before, arguments.limit)
    if arguments.command == "session":
        if arguments.session_command == "retry":
            return retry_session(core, arguments, now)
        if arguments.session_command == "close":
            return close_day(core, arguments, now)
        return fail("session: say what to do (retry or close)")
    return daemon(core)


def check(core: Core) -> int:
    results = check_dependencies_now(core)
    width = max(len(name) for name, _ in results)
    for name, outcome in results:
        print("{:<{}}  {}".format(name, width, outcome), flush=True)
    failing = [name for name, outcome in results if outcome != "ok"]
    if failing:
        return fail("{} of {} dependencies not ok: {}".format(len(failing), len(results), ", ".join(failing)))
    return 0


def command_actor() -> str:
    """cli:<the OS user> (SPEC §7): who ran the command."""
    try:
        return cli_actor(getpass.getuser())
    except Exception:  # no user name in the environment nor in the password database
        return cli_actor(str(os.getuid()))


DAY_COLUMNS = (
    "day",
    "state",
    "file",
    "arrived",
    "stored",
    "ignored",
    "not found",
    "export file",
    "confirmed",
    "mails",
    "reconciled",
)


def print_days(core: Core, before: Optional[dt.date], limit: int) -> int:
    page = list_days(core.store, before=before, limit=limit)
    rows = [DAY_COLUMNS]
    for day in page.days:
        row = day.as_dict()
        rows.append(
            tuple(
                _cell(value)
                for value in (
                    row["day"],
                    row["state"],
                    row["file"],
                    day.file.received_at.strftime("%H:%M") if day.file else None,
                    row["stored"],
                    row["ignored"],
                    row["not_found"],
                    row["export_file"],
                    day.confirmed_at.strftime("%H:%M") if day.confirmed_at else None,
                    row["mails"],
                    None
                    if row["reconciled"] is None
                    else ("yes" if row["reconciled"] else "NO " + ",".join(row["differences"])),
                )
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(DAY_COLUMNS))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if page.next is not None:
        print("(older days: --before {})".format(page.next.isoformat()))
    return 0


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def retry_session(core: Core, arguments: argparse.Namespace, now: dt.datetime) -> int:
    ready = core.retry_session(arguments.day, arguments.reason, command_actor(), now, redeliver=arguments.redeliver)
    core.deliver_outbox(now)
    print(core.sentences.text("retried", day=ready.day.isoformat()))
    return 0


def close_day(core: Core, arguments: argparse.Namespace, now: dt.datetime) -> int:
    """``session close --day D --reason TEXT`` (SPEC §9): Close for any day, audited as cli:<user>
    with the reason; a day already closed whose delivery is unknown is settled now, as Close does."""
    day, reason = arguments.day, " ".join(arguments.reason.split())
    if not reason:
        raise Conflict(code="close_no_reason", day=day.isoformat())
    found = core.session_status(day)
    if found.state is SessionState.CLOSED and found.delivery is Delivery.UNKNOWN:
        after = core.close_session.settle_now(now, command_actor(), day, reason)
    else:
        after = core.close_session(now, actor=command_actor(), day=day, reason=reason)
    delivery = after.delivery.value if after.delivery is not None else None
    print(core.sentences.text("closed_by_command", day=day.isoformat(), delivery=delivery))
    return 0


def import_file(core: Core, path: Path, now: dt.datetime) -> int:
    try:
        stream = path.open("rb")
    except OSError as error:
        return fail("cannot read {}: {}".format(path, error.strerror))
    with stream:
        summary = core.import_upload(path.name, stream, now, actor=command_actor())
    core.deliver_outbox(now)
    if summary.status is FileStatus.REJECTED:
        first = summary.problems[0]
        return fail(
            core.sentences.text(
                "cli_rejected",
                file=summary.file_name,
                count=summary.problem_count,
                line=first.line,
                reason=first.reason,
            )
        )
    print(
        core.sentences.text(
            "cli_imported",
            file=summary.file_name,
            day=summary.day,
            stored=summary.stored_lines,
            ignored=summary.ignored_lines,
            not_found=len(summary.not_found),
        )
    )
    return 0


def daemon(core: Core) -> int:
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        log.info("signal %s received: stopping after the current job", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info("warehouse-runner started (time zone %s)", core.settings.timezone)
    worker = threading.Thread(target=run_session_worker, args=(core, stop), name="warehouse-session-worker")
    worker.start()
    run_scheduler(core, stop)
    core.session_wakeup.set()
    worker.join()
    return 0


def fail(message: str) -> int:
    print(REDACTOR("{}: {}".format(PROGRAM, message)), file=sys.stderr)
    return 1


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text
