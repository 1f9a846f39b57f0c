from __future__ import annotations

import logging
from typing import List

import pytest

from warehouse_runner.quiet_logs import RepeatFilter


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def said():
    """A logger whose handler carries the filter on an injected clock: the lines it lets through."""
    ticks = Ticks()
    lines: List[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append("{} {}: {}".format(record.levelname, record.name, record.getMessage()))

    handler = Collect()
    handler.addFilter(RepeatFilter(monotonic=ticks))
    loggers = []

    def logger(name: str) -> logging.Logger:
        found = logging.getLogger(name)
        found.addHandler(handler)
        found.propagate = False
        found.setLevel(logging.DEBUG)
        loggers.append(found)
        return found

    yield ticks, lines, logger
    for found in loggers:
        found.removeHandler(handler)
        found.propagate = True
        found.setLevel(logging.NOTSET)


def test_waitress_queue_depth_warnings_are_said_once_a_minute_with_their_count(said):
    ticks, lines, logger = said
    queue = logger("waitress.queue")
    for depth in range(1, 40):  # 39 warnings in 38 s, each naming another depth
        queue.warning("Task queue depth is %d", depth)
        ticks.now += 1
    assert lines == ["WARNING waitress.queue: Task queue depth is 1"]
    ticks.now += 30  # a minute after the first one was said
    queue.warning("Task queue depth is %d", 3)
    assert lines[1:] == ["WARNING waitress.queue: Task queue depth is 3 (repeated 38 times in the last minute)"]
    ticks.now += 61
    queue.warning("Task queue depth is %d", 2)
    assert lines[2:] == ["WARNING waitress.queue: Task queue depth is 2"], "nothing dropped since: no count"


def test_a_database_outage_is_one_error_a_minute_not_one_every_two_seconds(said):
    ticks, lines, logger = said
    worker, pool = logger("warehouse_runner.jobs"), logger("psycopg.pool")
    for _ in range(45):  # 90 s of outage: the worker's round every 2 s, two pool lines each time
        pool.warning("error connecting in 'pool-1': connection failed: port 5432 failed: Connection refused")
        pool.info("waiting %.1f sec before reconnecting", 1.5)
        worker.error("session worker round failed: %s; retried in %s s", "the database is unavailable", 2.0)
        ticks.now += 2
    assert len(lines) == 6, lines
    assert lines[3:] == [
        "WARNING psycopg.pool: error connecting in 'pool-1': connection failed: port 5432 failed: Connection refused"
        " (repeated 29 times in the last minute)",
        "INFO psycopg.pool: waiting 1.5 sec before reconnecting (repeated 29 times in the last minute)",
        "ERROR warehouse_runner.jobs: session worker round failed: the database is unavailable; retried in 2.0 s"
        " (repeated 29 times in the last minute)",
    ]


def test_different_warnings_and_ordinary_info_lines_are_never_held_back(said):
    ticks, lines, logger = said
    jobs = logger("warehouse_runner.jobs")
    jobs.error("%s failed: %s", "poll", "the database is unavailable")
    jobs.error("%s failed: %s", "mail delivery", "the database is unavailable")
    for _ in range(3):
        jobs.info("poll: nothing to do")
    assert (
        lines
        == [
            "ERROR warehouse_runner.jobs: poll failed: the database is unavailable",
            "ERROR warehouse_runner.jobs: mail delivery failed: the database is unavailable",
        ]
        + ["INFO warehouse_runner.jobs: poll: nothing to do"] * 3
    )


def test_the_daemons_log_handler_carries_the_filter():
    from warehouse_runner.cli import configure_logging

    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    for handler in before:
        root.removeHandler(handler)
    try:
        configure_logging()
        [handler] = root.handlers
        assert any(isinstance(f, RepeatFilter) for f in handler.filters)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in before:
            root.addHandler(handler)
        root.setLevel(level)


def test_each_try_of_an_upload_is_its_own_line_not_a_repeat(said):
    """The service's own lines are repeats only when they say the same thing: "try 1 of 3" and
    "try 2 of 3" are two decisions an operator reads one after the other (a library's counter,
    such as waitress's queue depth, is noise and is blanked)."""
    ticks, lines, logger = said
    worker = logger("warehouse_core.usecases.run_session")
    for attempt in (1, 2, 3):
        worker.warning("upload of %s, try %d of %d: %s", "Spedizioni20261126_6.txt", attempt, 3, "550 refused")
        ticks.now += 2
    assert [line.split(", try ")[1] for line in lines] == [
        "1 of 3: 550 refused",
        "2 of 3: 550 refused",
        "3 of 3: 550 refused",
    ]
    worker.warning("upload of %s, try %d of %d: %s", "Spedizioni20261126_6.txt", 3, 3, "550 refused")
    assert len(lines) == 3, "the very same line again within the minute is a repeat"
