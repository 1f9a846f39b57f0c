"""SPEC §10 with a database host that goes silent: no refusal, no reset, just no answer (a firewall
that drops, a dead VM). The store must give up within about the connect timeout, and come back at
once when the host answers again.

The silent host is a TCP proxy between the store and a real PostgreSQL: silenced, it stops reading
and forwarding and keeps every socket open. Its kernel still acknowledges what fits in its receive
buffer, so a small query is taken and never answered, and a large one stops on a closed window:
the two ways a connection hears nothing back that a proxy on loopback can show without root.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from typing import Any, Callable, Iterator, List, Optional, Tuple

import psycopg
import pytest

from tests.conftest import at
from tests.fakes import FakeArchive, FakeClock, FakeExportFiles, FakeInbound, FakeMailer, FakeOutbound, FakeRemoteLog
from warehouse_core.adapters.postgres import PsycopgStore
from warehouse_core.bootstrap import bootstrap
from warehouse_core.errors import DatabaseUnavailable

# libpq takes any connect timeout below 2 s as 2 s.
CONNECT_TIMEOUT = 2
WITHIN = 1.5 * CONNECT_TIMEOUT
# Enough to fill the proxy's receive buffer and the client's send buffer (at most 4 MiB on Linux),
# so that part of the query waits on a closed window: what an import's COPY to a silent host does.
LARGER_THAN_THE_WINDOWS = 16 * 1024 * 1024


class SilenceableProxy:
    """Forwards 127.0.0.1:port to ``upstream`` until ``silence()``; ``speak()`` resumes."""

    def __init__(self, upstream: Tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A fixed, small receive buffer (inherited by accepted sockets): the window closes soon.
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._speaking = threading.Event()
        self._speaking.set()
        self._closed = threading.Event()
        self._sockets: List[socket.socket] = [self._listener]
        self._threads = [threading.Thread(target=self._accept, name="proxy-accept", daemon=True)]
        self._threads[0].start()

    def silence(self) -> None:
        self._speaking.clear()

    def speak(self) -> None:
        self._speaking.set()

    def close(self) -> None:
        self._closed.set()
        self._speaking.set()
        for thread in self._threads:
            thread.join(5)
        for each in self._sockets:
            each.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            # Silent, it accepts nothing: the kernel completes the handshake and then nothing answers.
            if not self._speaking.wait(0.05) or not _readable(self._listener, 0.05):
                continue
            client, _ = self._listener.accept()
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            pump = threading.Thread(target=self._pump, args=(client, server), name="proxy-pump", daemon=True)
            self._threads.append(pump)
            pump.start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        other = {client: server, server: client}
        with selectors.DefaultSelector() as selector:
            for each in other:
                selector.register(each, selectors.EVENT_READ)
            while not self._closed.is_set():
                if not self._speaking.wait(0.05):
                    continue
                for key, _ in selector.select(0.05):
                    try:
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if not data:
                            return
                        other[key.fileobj].sendall(data)  # type: ignore[index]
                    except OSError:
                        return


def _readable(sock: socket.socket, seconds: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        return bool(selector.select(seconds))


@pytest.fixture
def proxy(postgres_server: str) -> Iterator[SilenceableProxy]:
    address = postgres_server.split("@", 1)[1].split("/", 1)[0]
    host, port = address.rsplit(":", 1)
    proxy = SilenceableProxy((host, int(port)))
    yield proxy
    proxy.close()


@pytest.fixture
def store(proxy: SilenceableProxy, postgres_server: str, db_schema: str) -> Iterator[PsycopgStore]:
    head, tail = postgres_server.split("@", 1)
    url = "{}@127.0.0.1:{}/{}".format(head, proxy.port, tail.split("/", 1)[1])
    store = PsycopgStore(url, schema=db_schema, connect_timeout=CONNECT_TIMEOUT)
    yield store
    proxy.speak()  # lets any operation still waiting finish before the pool closes
    store.close()
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute('DROP SCHEMA IF EXISTS "{}" CASCADE'.format(db_schema))


def outcome_within(seconds: float, operation: Callable[[], Any]) -> Tuple[Optional[BaseException], float]:
    """What ``operation`` raised (None when it returned) and how long it took; still running after
    ``seconds`` fails the test (the thread ends once the proxy speaks again)."""
    outcome: List[Optional[BaseException]] = []

    def run() -> None:
        try:
            operation()
        except BaseException as error:  # noqa: B036 - handed to the test
            outcome.append(error)
        else:
            outcome.append(None)

    began = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    elapsed = time.monotonic() - began
    assert outcome, "still waiting after {:.1f} s".format(elapsed)
    return outcome[0], elapsed


def select_one(store: PsycopgStore) -> None:
    with store.connection() as connection:
        connection.execute("SELECT 1")


def test_a_pooled_connection_to_a_silent_host_is_given_up_within_the_connect_timeout(proxy, store):
    select_one(store)  # the pool now holds an idle connection through the proxy
    proxy.silence()
    error, elapsed = outcome_within(3 * WITHIN, lambda: select_one(store))
    assert isinstance(error, DatabaseUnavailable), error
    assert elapsed < WITHIN, elapsed
    error, elapsed = outcome_within(3 * WITHIN, lambda: select_one(store))  # known down: one try
    assert isinstance(error, DatabaseUnavailable), error
    assert elapsed < WITHIN, elapsed


def test_a_silent_host_with_no_pooled_connection_is_given_up_within_the_connect_timeout(proxy, store):
    proxy.silence()
    error, elapsed = outcome_within(3 * WITHIN, lambda: select_one(store))
    assert isinstance(error, DatabaseUnavailable), error
    assert elapsed < WITHIN, elapsed


def test_when_the_silent_host_answers_again_the_next_request_succeeds_at_once(proxy, store):
    select_one(store)
    proxy.silence()
    error, _ = outcome_within(3 * WITHIN, lambda: select_one(store))
    assert isinstance(error, DatabaseUnavailable), error
    proxy.speak()
    error, elapsed = outcome_within(3 * WITHIN, lambda: select_one(store))
    assert error is None and elapsed < 1.0, (error, elapsed)


def test_a_query_under_way_when_the_host_goes_silent_fails_within_about_the_connect_timeout(proxy, store):
    """What bounds it is libpq's tcp_user_timeout: the send waits on a window that never opens."""

    def send_a_large_query_as_the_host_goes_silent() -> None:
        with store.connection() as connection:
            connection.execute("SELECT 1")
            proxy.silence()
            connection.execute("SELECT length(%s)", ("x" * LARGER_THAN_THE_WINDOWS,))

    error, elapsed = outcome_within(3 * WITHIN, send_a_large_query_as_the_host_goes_silent)
    assert isinstance(error, DatabaseUnavailable), error
    assert elapsed < WITHIN, elapsed


def test_the_pages_and_the_api_answer_503_within_the_connect_timeout_and_recover_at_once(proxy, store, make_settings):
    from warehouse_web import create_app

    core = bootstrap(
        make_settings(db_schema=store.schema),
        store=store,
        inbound=FakeInbound(),
        archive=FakeArchive(),
        mailer=FakeMailer(),
        outbound=FakeOutbound(),
        remote_log=FakeRemoteLog(),
        exports=FakeExportFiles(),
        clock=FakeClock(at("2026-11-26T10:00")),
    )
    client = create_app({"TESTING": True}, core=core).test_client()
    assert client.get("/api/session").status_code == 200
    proxy.silence()
    time.sleep(0.3)  # past the status cache's quarter second
    statuses: List[int] = []
    for path in ("/api/session", "/", "/healthz"):
        error, elapsed = outcome_within(3 * WITHIN, lambda path=path: statuses.append(client.get(path).status_code))
        assert error is None and statuses[-1] == 503 and elapsed < WITHIN, (path, error, statuses, elapsed)
    proxy.speak()
    time.sleep(0.3)
    began = time.monotonic()
    assert client.get("/api/session").status_code == 200
    assert time.monotonic() - began < 1.0
