"""``warehouse-web``: the page and API served by waitress, with the scheduler in the same process.

waitress is a pure-Python production WSGI server: it runs unchanged on Python 3.8 and the newest
CPython, needs no compiler, and serves with threads in one process, so the in-process scheduler
and session worker share the app's connection pool (a forking server would copy them).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any, Callable, Dict, List, Optional

from flask import Flask

from warehouse_core.bootstrap import Core, bootstrap
from warehouse_core.errors import WarehouseError
from warehouse_core.redact import REDACTOR
from warehouse_core.settings import load_settings
from warehouse_runner.cli import configure_logging
from warehouse_runner.jobs import start_background
from warehouse_runner.signals import Interrupted, interruptible, stopped_line
from warehouse_web.app import create_app

log = logging.getLogger("warehouse_web")
PROGRAM = "warehouse-web"
# How long requests already being served may take to finish once a stop is requested.
REQUEST_GRACE_SECONDS = 5.0
# How far past the app's upload limit waitress still reads a body, so the app can answer it.
UPLOAD_READ_FACTOR = 2
# waitress sized for 20 operators' pages polling GET /api/session at once (docs/ops.md, measured by
# tests/integration/test_web_load.py): with 8 threads, 1000 such requests queued tasks 326 times
# ("Task queue depth"); with a thread per client and headroom none queue. Connections: two per
# page (the poll and a download) for 20 pages, and the reverse proxy's, well inside 100; the
# listen backlog takes a burst of all of them connecting at once.
THREADS = 24
CONNECTION_LIMIT = 100
BACKLOG = 128


class StopRequest:
    """What SIGTERM and Ctrl-C do: note the request and wake the server loop, nothing more.

    Raising from a signal handler would let the exception surface wherever the main thread is;
    inside waitress's loop a dispatcher catches it ("uncaptured python exception, closing
    channel") and goes on serving. Setting a flag cannot be swallowed, and a second signal while
    the server stops only sets it again: no traceback.
    """

    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake
        self.signal: Optional[int] = None

    def __call__(self, signum: int, frame: object) -> None:
        if self.signal is None:
            self.signal = signum
        try:
            self.wake()
        except OSError:  # the wake-up pipe is full or closed: the loop wakes within its timeout anyway
            pass

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self)

    @staticmethod
    def ignore_from_now_on() -> None:
        """Once stopped: while the interpreter exits, Python puts back the default handlers it
        replaced, and a late signal would kill the process; one that is ignored stays ignored."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=PROGRAM, description="The warehouse operators' web page and API.")
    top.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    top.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    top.add_argument(
        "--no-scheduler", action="store_true", help="serve only; polls and sessions run in warehouse-runner"
    )
    top.add_argument(
        "--threads", type=int, default=THREADS, help="request threads (default %(default)s: 20 pages polling at once)"
    )
    return top


def main(argv: Optional[List[str]] = None) -> int:
    arguments = parser().parse_args(argv)
    configure_logging()
    # Until serve() installs StopRequest, SIGTERM and Ctrl-C end the start-up at once, with one line.
    with interruptible():
        core: Optional[Core] = None
        try:
            settings = load_settings()
            REDACTOR.add_settings(settings)
            core = bootstrap(settings)
            app = create_app(core=core)
        except Interrupted as interrupted:
            return stopped_while_starting(core, interrupted)
        except WarehouseError as error:
            print(REDACTOR("{}: {}".format(PROGRAM, error)), file=sys.stderr)
            return 1
        except Exception as error:
            print(
                REDACTOR("{}: cannot start: {}".format(PROGRAM, " ".join(str(error).split()) or type(error).__name__)),
                file=sys.stderr,
            )
            return 1
        try:
            return serve(
                app,
                core,
                arguments.host,
                arguments.port,
                scheduler=not arguments.no_scheduler,
                threads=arguments.threads,
            )
        except Interrupted as interrupted:  # before serve() had put StopRequest in place
            return stopped_while_starting(core, interrupted)


def stopped_while_starting(core: Optional[Core], interrupted: Interrupted) -> int:
    if core is not None:
        core.close()
    print(stopped_line(PROGRAM, interrupted), file=sys.stderr)
    return 0


def waitress_body_limit(app: Flask) -> int:
    """waitress's own cap on a request body, above the app's upload limit so that the app answers.

    waitress reads a whole body (to a temporary file past half a MB) before the app sees the
    request, and refuses one above its cap with a plain-text 413 without reading it. Up to twice the
    limit the app answers instead, with the JSON sentence naming the limit (SPEC §7); a body
    announced larger than that is cut off unread, so nobody can make the server spool a gigabyte.
    """
    return UPLOAD_READ_FACTOR * int(app.config["MAX_CONTENT_LENGTH"])


def proxy_options(trusted_proxy: Optional[str]) -> Dict[str, Any]:
    """waitress believes X-Forwarded-Proto and -For only from WAREHOUSE_TRUSTED_PROXY; from any
    other address it drops them (its default), so nobody can claim HTTPS or another address."""
    if trusted_proxy is None:
        return {"clear_untrusted_proxy_headers": True}
    return {
        "trusted_proxy": trusted_proxy,
        "trusted_proxy_count": 1,
        "trusted_proxy_headers": {"x-forwarded-proto", "x-forwarded-for"},
        "clear_untrusted_proxy_headers": True,
    }


def serve(
    app: Flask,
    core: Core,
    host: str,
    port: int,
    *,
    scheduler: bool = True,
    threads: int = THREADS,
    on_ready: Optional[Callable[[int], None]] = None,
) -> int:
    """Serve until SIGTERM or Ctrl-C, with the scheduler and session worker unless told not to."""
    from waitress import create_server, trigger, wasyncore

    try:
        server = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            connection_limit=CONNECTION_LIMIT,
            backlog=BACKLOG,
            max_request_body_size=waitress_body_limit(app),
            **proxy_options(core.settings.trusted_proxy),
        )
    except OSError as error:
        print("{}: cannot listen on {}:{}: {}".format(PROGRAM, host, port, error.strerror), file=sys.stderr)
        core.close()
        return 1
    socket_map = getattr(server, "_map", None) or server.map
    wake = trigger.trigger(socket_map)  # a pipe in the loop's map: a write to it ends the loop's wait
    stop_request = StopRequest(wake.pull_trigger)
    stop_request.install()  # before the background threads start: from here a signal only sets the flag
    stop = threading.Event()
    # A running export is CPU-bound Python in this process: hand the GIL to request threads sooner.
    sys.setswitchinterval(0.001)
    background = start_background(core, stop) if scheduler else []
    log.info(
        "warehouse-web serving on http://%s:%s/%s",
        host,
        server.effective_port,
        "" if background else " (scheduler off: run warehouse-runner)",
    )
    if on_ready is not None:
        on_ready(int(server.effective_port))
    try:
        while not stop_request.requested:
            wasyncore.loop(
                timeout=server.adj.asyncore_loop_timeout, map=socket_map, use_poll=server.adj.asyncore_use_poll, count=1
            )
        log.info("signal %s received: stopping", stop_request.signal)
    finally:
        stop.set()
        core.session_wakeup.set()
        # Requests being served finish before the sockets they answer on are closed.
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=REQUEST_GRACE_SECONDS)
        server.close()
        wake.close()
        for thread in background:
            thread.join(timeout=30)
        core.close()
        log.info("warehouse-web stopped")
        stop_request.ignore_from_now_on()
    return 0
