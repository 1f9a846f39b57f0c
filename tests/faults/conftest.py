"""The fault suite: real servers, the service in real subprocesses, faults injected on purpose.

Each test carries ``@pytest.mark.fault(scenario, injected)`` and may add what it saw with
``outcome(...)``; the run ends with a table of scenario, injected fault and outcome.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

from warehouse_devstack.servers import FtpServer

_ROWS: List[Dict[str, str]] = []


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "fault(scenario, injected): a row of the fault suite's summary table")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Iterator[None]:
    report = (yield).get_result()
    marker = item.get_closest_marker("fault")
    if marker is None or report.when != "call" and not (report.when == "setup" and report.failed):
        return
    seen = dict(item.user_properties).get("outcome", "")
    result = "passed" if report.passed else ("FAILED" if report.failed else report.outcome)
    _ROWS.append(
        {
            "scenario": marker.args[0],
            "injected": marker.args[1],
            "outcome": "{}: {}".format(result, seen) if seen else result,
        }
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _ROWS:
        return
    width = [
        max(
            len(row[key])
            for row in _ROWS + [{"scenario": "scenario", "injected": "injected fault", "outcome": "outcome"}]
        )
        for key in ("scenario", "injected", "outcome")
    ]
    line = "| {:<{}} | {:<{}} | {:<{}} |"
    terminalreporter.section("fault suite summary")
    terminalreporter.write_line(line.format("scenario", width[0], "injected fault", width[1], "outcome", width[2]))
    terminalreporter.write_line("|" + "|".join("-" * (w + 2) for w in width) + "|")
    for row in _ROWS:
        terminalreporter.write_line(
            line.format(row["scenario"], width[0], row["injected"], width[1], row["outcome"], width[2])
        )


@pytest.fixture
def outcome(request: Any) -> Callable[[str], None]:
    def say(text: str) -> None:
        request.node.user_properties.append(("outcome", text))

    return say


@pytest.fixture
def outbound_server(tmp_path: Path) -> Iterator[FtpServer]:
    server = FtpServer(tmp_path / "outbound-root", user="shipper", password="secret-out").start()
    yield server
    server.stop()


class Service:
    """warehouse-runner / warehouse-web as subprocesses against the fixture servers."""

    def __init__(self, env: Dict[str, str], data_dir: Path) -> None:
        self.env = env
        self.data_dir = data_dir
        self.outputs: List[str] = []

    def command(self, program: str) -> List[str]:
        module = {"warehouse-runner": "warehouse_runner", "warehouse-web": "warehouse_web"}[program]
        return [sys.executable, "-m", module]

    def run(
        self, *arguments: str, program: str = "warehouse-runner", timeout: float = 120, **env: str
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            self.command(program) + list(arguments),
            env=dict(self.env, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
        self.outputs.append(result.stdout + result.stderr)
        return result

    def start(self, *arguments: str, program: str = "warehouse-runner", **env: str) -> "subprocess.Popen[str]":
        return subprocess.Popen(
            self.command(program) + list(arguments),
            env=dict(self.env, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def finish(self, process: "subprocess.Popen[str]", kill: bool = False, timeout: float = 60) -> str:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        output, _ = process.communicate(timeout=timeout)
        self.outputs.append(output)
        return output

    def wait(self, process: "subprocess.Popen[str]", timeout: float = 60) -> str:
        output, _ = process.communicate(timeout=timeout)
        self.outputs.append(output)
        return output

    def archive(self) -> List[str]:
        root = self.data_dir / "archive"
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def service(
    tmp_path, postgres_server, db_schema, real_store, ftp_server, outbound_server, smtp_server, service_environment
) -> Service:
    data_dir = tmp_path / "var"
    (tmp_path / "remote").mkdir()
    env = service_environment(
        **{
            "WAREHOUSE_DATABASE_URL": postgres_server,
            "WAREHOUSE_DB_SCHEMA": db_schema,
            "WAREHOUSE_INBOUND_FTP_URL": ftp_server.url(),
            "WAREHOUSE_OUTBOUND_FTP_URL": outbound_server.url(),
            "WAREHOUSE_REMOTE_LOG_FS": "osfs://" + str(tmp_path / "remote"),
            "WAREHOUSE_REMOTE_LOG_PATH": "importer-{date}.log",
            "WAREHOUSE_REMOTE_LOG_INTERVAL": "0.2",
            "WAREHOUSE_REMOTE_LOG_TIMEOUT": "30",
            "WAREHOUSE_SMTP_URL": smtp_server.url(),
            "WAREHOUSE_MAIL_FROM": "warehouse@example.com",
            "WAREHOUSE_MAIL_TO": "ops@example.com",
            "WAREHOUSE_DATA_DIR": str(data_dir),
            "WAREHOUSE_FTP_TIMEOUT": "10",
        }
    )
    return Service(env, data_dir)


def query(store: Any, text: str, params: Any = None) -> List[Any]:
    with store.connection() as connection:
        return connection.execute(text, params).fetchall()


def wait_until(condition: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)
