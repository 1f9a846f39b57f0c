"""Loaded only by processes that run under libfaketime (tests/faketime.py puts this folder first on
their PYTHONPATH).

libfaketime 0.9.10 (Debian 12) answers EINVAL to clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)
when the monotonic clock is left real, and that call is how Python 3.11 and later sleep; faking the
monotonic clock too is worse (every timed lock wait then hangs). So here time.sleep waits on
select(), which libfaketime leaves alone: the same pause, measured on the real monotonic clock.
"""

import select
import sys
import time

if sys.version_info >= (3, 11):
    _monotonic = time.monotonic

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        deadline = _monotonic() + seconds
        select.select([], [], [], seconds)  # sleep(0) still lets other threads run
        left = deadline - _monotonic()
        while left > 0:
            select.select([], [], [], left)
            left = deadline - _monotonic()

    time.sleep = _sleep
