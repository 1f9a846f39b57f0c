"""``warehouse-web`` stops on SIGTERM and Ctrl-C whatever it is doing when the signal lands.

A signal handler that raises lets the exception surface wherever the main thread happens to be;
inside waitress's loop, a dispatcher swallows it ("uncaptured python exception, closing channel")
and the server goes on serving. Under load the main thread is nearly always inside a dispatcher,
so requests in flight make the old failure show in most rounds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from typing import Dict, Iterator, List

import pytest

from tests.conftest import devstack_pythonpath
from warehouse_devstack.servers import free_port, wait_for_port

ROUNDS = 4
CLIENTS = 12
PROMPT_SECONDS = 10.0
PATHS = ("/", "/api/session", "/static/app.css", "/healthz")


@pytest.fixture
def web_env(tmp_path, postgres_server, db_schema, real_store, service_environment) -> Dict[str, str]:
    return service_environment(
        **{
            "WAREHOUSE_DATABASE_URL": postgres_server,
            "WAREHOUSE_DB_SCHEMA": db_schema,
            "WAREHOUSE_INBOUND_FTP_URL": "ftp://in:pw@127.0.0.1:{}/".format(free_port()),
            "WAREHOUSE_OUTBOUND_FTP_URL": "ftp://out:pw@127.0.0.1:{}/".format(free_port()),
            "WAREHOUSE_REMOTE_LOG_FS": "osfs://" + str(tmp_path),
            "WAREHOUSE_REMOTE_LOG_PATH": "importer.log",
            "WAREHOUSE_SMTP_URL": "smtp://127.0.0.1:{}".format(free_port()),
            "WAREHOUSE_MAIL_FROM": "warehouse@example.com",
            "WAREHOUSE_MAIL_TO": "ops@example.com",
            "WAREHOUSE_DATA_DIR": str(tmp_path / "var"),
            "WAREHOUSE_SECRET_KEY": "test-only",
        }
    )


class Load:
    """Client threads sending requests on new connections until told to stop."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answered = 0
        self.stopping = threading.Event()
        self.threads: List[threading.Thread] = []

    def _client(self, offset: int) -> None:
        n = offset
        while not self.stopping.is_set():
            path = PATHS[n % len(PATHS)]
            n += 1
            try:
                urllib.request.urlopen("http://127.0.0.1:{}{}".format(self.port, path), timeout=2).read()
                self.answered += 1
            except Exception:
                time.sleep(0.01)

    def __enter__(self) -> "Load":
        for offset in range(CLIENTS):
            thread = threading.Thread(target=self._client, args=(offset,), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=5)

    def wait_for_answers(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.answered < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.answered >= count, "the server answered {} requests".format(self.answered)


def start_web(env: Dict[str, str], port: int) -> "subprocess.Popen[str]":
    return subprocess.Popen(
        [sys.executable, "-m", "warehouse_web", "--port", str(port), "--no-scheduler"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_within(process: "subprocess.Popen[str]", seconds: float) -> str:
    """stderr once the process has ended; kills it and fails when it did not end in time."""
    try:
        _, stderr = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(
            "warehouse-web still running {} s after the signal; stderr ends:\n{}".format(seconds, stderr[-2000:])
        )
    return stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_under_load_stops_the_server_promptly_every_time(web_env, signum):
    for round_number in range(ROUNDS):
        port = free_port()
        process = start_web(web_env, port)
        try:
            wait_for_port(port, timeout=60)
            with Load(port) as load:
                load.wait_for_answers(50)
                process.send_signal(signum)
                stderr = stop_within(process, PROMPT_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, "round {}: exit {}\n{}".format(round_number, process.returncode, stderr[-2000:])
        assert "Traceback" not in stderr and "uncaptured python exception" not in stderr, stderr[-2000:]
        assert "warehouse-web stopped" in stderr


def test_a_second_signal_during_shutdown_prints_no_traceback(web_env):
    for round_number in range(ROUNDS):
        port = free_port()
        process = start_web(web_env, port)
        try:
            wait_for_port(port, timeout=60)
            with Load(port) as load:
                load.wait_for_answers(20)
                process.send_signal(signal.SIGTERM)
                # Ctrl-C pressed while it stops, or just after it stopped serving, as it exits.
                time.sleep((0.0, 0.01, 0.05, 0.2)[round_number % 4])
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
                stderr = stop_within(process, PROMPT_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, "round {}: exit {}\n{}".format(round_number, process.returncode, stderr[-2000:])
        assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-2000:]


@pytest.fixture
def own_database(postgres_server) -> Iterator[str]:
    """A database of its own on the test server, for a stack that migrates its default schema."""
    import psycopg

    name = "devstack_" + uuid.uuid4().hex[:10]
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute('CREATE DATABASE "{}"'.format(name))
    yield postgres_server.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute('DROP DATABASE IF EXISTS "{}" WITH (FORCE)'.format(name))


def test_make_run_stops_on_ctrl_c_pressed_twice(tmp_path, own_database, service_environment):
    env = service_environment(WAREHOUSE_DATABASE_URL=own_database)
    env["PYTHONPATH"] = devstack_pythonpath(env)
    port = free_port()
    # A session of its own, as a terminal's foreground job: Ctrl-C goes to every process of it.
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "warehouse_devstack",
            "--var",
            str(tmp_path / "var"),
            "--port",
            str(port),
            "--no-sample",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=90)
        with Load(port) as load:
            load.wait_for_answers(10)
            os.killpg(process.pid, signal.SIGINT)
            time.sleep(0.05)
            os.killpg(process.pid, signal.SIGINT)
            stderr = stop_within(process, 60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-2000:]
