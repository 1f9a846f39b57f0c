"""The service's processes read the wall clock ``make test-faketime`` asks for; pytest keeps the real one."""

from __future__ import annotations

import subprocess
import sys
import time

from tests import faketime


def test_service_processes_read_the_wall_clock_of_the_run(service_environment):
    wall = faketime.from_environment()
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time(), time.monotonic())"],
        env=service_environment(),
        stdout=subprocess.PIPE,
        text=True,
        timeout=60,
        check=True,
    )
    seen, monotonic = (float(value) for value in result.stdout.split())
    expected = started if wall is None else wall.moment.timestamp() + (started - wall.started)
    assert abs(seen - expected) < 60, "the process read {} instead of about {}".format(seen, expected)
    assert abs(monotonic - time.monotonic()) < 60, "the monotonic clock is the real one"
