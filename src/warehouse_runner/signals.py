"""SIGTERM and Ctrl-C before a service has installed its own stop handlers: while it starts.

Start-up waits on the network (the database connect, the migration, the view check): a flag would
not be looked at until the wait ends, so here the handler raises, as Python's own Ctrl-C does, and
the entry point turns that into one line. Once the daemon or the server runs, its handlers only
set a flag (warehouse_web.cli.StopRequest): raising inside waitress's loop would be swallowed.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Any, Dict, Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """A stop signal arrived: a BaseException, so that no ``except Exception`` on the way takes it
    for an error of the work it interrupts."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


@contextmanager
def interruptible() -> Iterator[None]:
    """Inside: SIGTERM and Ctrl-C raise Interrupted, once (a second signal while the first is being
    handled is ignored, never a traceback). Handlers installed inside stay; else the previous ones
    are put back."""
    raised = []

    def interrupt(signum: int, frame: Any) -> None:
        if raised:
            return
        raised.append(signum)
        raise Interrupted(signum)

    previous: Dict[int, Any] = {signum: signal.signal(signum, interrupt) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        # After a stop, ours stay (ignoring): a late Ctrl-C while the process exits prints nothing.
        for signum, handler in previous.items():
            if not raised and signal.getsignal(signum) is interrupt:
                signal.signal(signum, handler)


def stopped_line(program: str, interrupted: Interrupted, during: str = "start-up") -> str:
    return "{}: stopped by {} during {}".format(program, interrupted.name, during)
