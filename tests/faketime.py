"""The service's processes under libfaketime, for ``make test-faketime``.

With ``WAREHOUSE_TEST_FAKETIME=2027-10-31T02:30`` (a local time in Europe/Rome) in the environment
of pytest, the fixtures that start the service's own processes (``service_environment`` in
tests/conftest.py) start each of them under libfaketime: their wall clock reads that moment when
the test begins and runs on from there, at the real pace, for every process of the test.
PostgreSQL, the test servers and pytest itself keep the real clock. The moments are awkward on
purpose (a Saturday, the night the clocks go forward or back, the last minute of the year): a
test whose outcome changes under them read the wall clock instead of the time the test gave.

``python -m tests.faketime MOMENT COMMAND...`` runs one command so (the unit suite: pytest itself).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from warehouse_core.clock import zone

VARIABLE = "WAREHOUSE_TEST_FAKETIME"
ZONE = "Europe/Rome"
# A sitecustomize that works around libfaketime 0.9.10's time.sleep failure on Python >= 3.11.
SITE = Path(__file__).resolve().parent / "faketime_site"


def library() -> Path:
    """Debian's libfaketime, the variant safe for threaded programs."""
    for pattern in ("/usr/lib/*/faketime/libfaketimeMT.so.1", "/usr/lib/faketime/libfaketimeMT.so.1"):
        found = sorted(Path("/").glob(pattern.lstrip("/")))
        if found:
            return found[0]
    raise RuntimeError("libfaketime is not installed: scripts/ensure-system-packages test installs it")


def moment(text: str) -> dt.datetime:
    """A local time in Europe/Rome; one the clocks skip or repeat is taken before the change (fold 0)."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=zone(ZONE))


class FakeWallClock:
    """One fake timeline: ``text`` now, running on from there."""

    def __init__(self, text: str) -> None:
        self.moment = moment(text)
        self.started = time.time()
        self.offset = int(round(self.moment.timestamp() - self.started))

    def environment(self, env: Mapping[str, str]) -> Dict[str, str]:
        """``env`` for a process that reads this timeline as its wall clock (and Rome as its local zone)."""
        preload = " ".join(filter(None, [str(library()), env.get("LD_PRELOAD")]))
        fake = dict(env)
        fake.pop(VARIABLE, None)
        fake.update(
            {
                "LD_PRELOAD": preload,
                "FAKETIME": "{:+d}".format(self.offset),
                # Only the wall clock moves: timeouts measured on the monotonic clock stay real.
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                "TZ": ZONE,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(SITE), env.get("PYTHONPATH")])),
            }
        )
        return fake


def from_environment(environ: Optional[Mapping[str, str]] = None) -> Optional[FakeWallClock]:
    """The timeline ``WAREHOUSE_TEST_FAKETIME`` asks for, or None for the real clock."""
    text = (os.environ if environ is None else environ).get(VARIABLE, "")
    return FakeWallClock(text) if text else None


def main(argv: List[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m tests.faketime MOMENT COMMAND...", file=sys.stderr)
        return 2
    environment = FakeWallClock(argv[0]).environment(os.environ)
    os.execvpe(argv[1], argv[1:], environment)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
