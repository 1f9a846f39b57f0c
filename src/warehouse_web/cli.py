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
from typing import Callable, List, Optional

from flask import Flask

from warehouse_core.bootstrap import Core, bootstrap
from warehouse_core.errors import WarehouseError
from warehouse_core.settings import load_settings
from warehouse_runner.cli import configure_logging
from warehouse_runner.jobs import start_background
from warehouse_web.app import create_app

log = logging.getLogger("warehouse_web")
PROGRAM = "warehouse-web"


class Stop(Exception):
    """Raised in the main thread by SIGTERM, to leave the server loop."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=PROGRAM, description="The warehouse operators' web page and API.")
    top.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    top.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    top.add_argument("--no-scheduler", action="store_true", help="serve only; polls and sessions run in warehouse-runner")
    top.add_argument("--threads", type=int, default=8, help="request threads (default 8)")
    return top


def main(argv: Optional[List[str]] = None) -> int:
    arguments = parser().parse_args(argv)
    configure_logging()
    try:
        core = bootstrap(load_settings())
        app = create_app(core=core)
    except WarehouseError as error:
        print("{}: {}".format(PROGRAM, error), file=sys.stderr)
        return 1
    except Exception as error:
        print("{}: cannot start: {}".format(PROGRAM, " ".join(str(error).split()) or type(error).__name__), file=sys.stderr)
        return 1
    return serve(app, core, arguments.host, arguments.port, scheduler=not arguments.no_scheduler, threads=arguments.threads)


def serve(app: Flask, core: Core, host: str, port: int, *, scheduler: bool = True, threads: int = 8,
          on_ready: Optional[Callable[[int], None]] = None) -> int:
    """Serve until SIGTERM or Ctrl-C, with the scheduler and session worker unless told not to."""
    from waitress import create_server

    try:
        # waitress refuses a body above the app's limit from its Content-Length, before reading it.
        server = create_server(
            app, host=host, port=port, threads=threads, max_request_body_size=app.config["MAX_CONTENT_LENGTH"]
        )
    except OSError as error:
        print("{}: cannot listen on {}:{}: {}".format(PROGRAM, host, port, error.strerror), file=sys.stderr)
        core.close()
        return 1
    stop = threading.Event()
    # A running export is CPU-bound Python in this process: hand the GIL to request threads sooner.
    sys.setswitchinterval(0.001)
    background = start_background(core, stop) if scheduler else []

    def request_stop(signum: int, frame: object) -> None:
        raise Stop()

    signal.signal(signal.SIGTERM, request_stop)
    log.info(
        "warehouse-web serving on http://%s:%s/%s",
        host, server.effective_port, "" if background else " (scheduler off: run warehouse-runner)",
    )
    if on_ready is not None:
        on_ready(int(server.effective_port))
    try:
        server.run()
    except (Stop, KeyboardInterrupt):
        log.info("stopping")
    finally:
        stop.set()
        core.session_wakeup.set()
        server.close()
        for thread in background:
            thread.join(timeout=30)
        core.close()
        log.info("warehouse-web stopped")
    return 0
