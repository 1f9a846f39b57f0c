"""``make run`` twice the same day: ``--fresh`` gives the demo an empty day, so that the README's
way to try a manual upload works after a normal run."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from tests.conftest import VALID_SAMPLE, devstack_pythonpath
from warehouse_devstack.servers import free_port, wait_for_port


class Demo:
    """One run of the demo stack (``python -m warehouse_devstack``) on loopback."""

    def __init__(self, var: Path, env: Dict[str, str], *arguments: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "warehouse_devstack", "--var", str(var), "--port", str(self.port)] + list(arguments),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for_port(self.port, timeout=90)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Dict[str, str] = None
    ) -> Tuple[int, bytes, Dict[str, str]]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, data, dict(response.getheaders())

    def state(self) -> str:
        return json.loads(self.request("GET", "/api/session")[1])["state"]

    def wait_for_state(self, state: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.state() != state:
            assert time.monotonic() < deadline, "the demo's day never became {}".format(state)
            time.sleep(0.2)

    def upload(self, path: Path) -> Tuple[int, dict]:
        status, page, headers = self.request("GET", "/")
        cookie = headers["Set-Cookie"].split(";")[0]
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.decode()).group(1)
        boundary = "demo-boundary"
        body = (
            '--{}\r\nContent-Disposition: form-data; name="file"; filename="{}"\r\nContent-Type: text/plain\r\n\r\n'.format(
                boundary, path.name
            ).encode()
            + path.read_bytes()
            + "\r\n--{}--\r\n".format(boundary).encode()
        )
        status, data, _ = self.request(
            "POST",
            "/api/session/upload",
            body,
            {
                "Content-Type": "multipart/form-data; boundary=" + boundary,
                "X-CSRF-Token": token,
                "Cookie": cookie,
            },
        )
        return status, json.loads(data)

    def stop(self) -> str:
        self.process.terminate()
        output, _ = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, output
        return output


def readme_poll_command(var: Path, env: Dict[str, str]) -> subprocess.CompletedProcess:
    """The README's way to poll the demo again, run as printed but with this interpreter's module
    for `.venv/bin/warehouse-runner` and the test's var folder for `var/`."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    [command] = re.findall(r"`(WAREHOUSE_CONFIG=var/demo\.env \.venv/bin/warehouse-runner poll)`", readme)
    assignment, program, argument = command.split()
    assert program == ".venv/bin/warehouse-runner"
    config = str(var / assignment.split("=", 1)[1].split("/", 1)[1])
    return subprocess.run(
        [sys.executable, "-m", "warehouse_runner", argument],
        env=dict(env, WAREHOUSE_CONFIG=config),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def run_demo(tmp_path, postgres_server, service_environment) -> Iterator:
    env = service_environment(
        WAREHOUSE_DATABASE_URL=postgres_server, WAREHOUSE_DB_SCHEMA="demo_" + uuid.uuid4().hex[:10]
    )
    env["PYTHONPATH"] = devstack_pythonpath(env)
    started: List[Demo] = []

    def run(*arguments: str) -> Demo:
        demo = Demo(tmp_path / "var", env, *arguments)
        started.append(demo)
        return demo

    run.env = env  # type: ignore[attr-defined]
    yield run
    for demo in started:
        if demo.process.poll() is None:
            demo.process.kill()
            demo.process.wait(timeout=30)


def test_fresh_gives_the_demo_an_empty_day_for_a_manual_upload(run_demo, tmp_path):
    first = run_demo()
    first.wait_for_state("ready")  # the poll at start imported today's sample
    poll = readme_poll_command(tmp_path / "var", run_demo.env)
    assert poll.returncode == 0, poll.stderr
    assert poll.stdout.startswith("poll at ") and "mails sent" in poll.stdout
    output = first.stop()
    [today] = [line for line in output.splitlines() if line.startswith(" Today ")]
    assert today.endswith(": ready") or "none yet: the start-up poll is taking Letture" in today, today
    mails = sorted((tmp_path / "var" / "mail").glob("*.eml"))
    assert mails, "the first run mailed its import summary"

    again = run_demo("--no-sample")
    assert again.state() == "ready"
    assert again.upload(VALID_SAMPLE)[0] == 409
    output = again.stop()
    assert "--fresh" in output, "the demo says how to get an empty day"

    fresh = run_demo("--fresh", "--no-sample")
    assert fresh.state() == "none"
    assert list((tmp_path / "var" / "mail").glob("*.eml")) == []
    assert list((tmp_path / "var" / "ftp" / "inbound").iterdir()) == []
    status, summary = fresh.upload(VALID_SAMPLE)
    assert status == 201, summary
    assert summary["stored_lines"] == 8
    fresh.wait_for_state("ready")
    fresh.stop()
