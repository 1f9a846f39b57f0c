"""A client whose network dies leaves no advisory lock behind for long (issue 18 item 6).

The poll lock and each session's claim are advisory locks that live as long as their backend. A
network blip that cuts the client off tells the server nothing: with the server's defaults its
backend waits on the system keepalive (about two hours), holding the lock, and the session stalls
and the polls are skipped. The store asks the server to probe its connections and end them when
nothing answers (``vanished_client_seconds``).

Proving it needs a network that drops packets, which a proxy on loopback cannot do: its kernel still
answers the server's probes. So the test gives PostgreSQL and the client a network namespace of
their own and puts a ``blackhole`` queue on its loopback: every packet is dropped, both ways, as a
dead link does. The test watches the locks through the server's Unix socket, which the dead
network does not touch. A plain connection that takes a lock the same way shows the blackhole is
real: its lock is still held when the store's are gone. Needs root (``unshare``, ``tc``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional, Set

import psycopg
import pytest

from warehouse_devstack.servers import PostgresCluster

VANISHED_CLIENT_SECONDS = 3
# The server's probes run on its kernel's timers: a few seconds of slack on a busy machine.
SLACK_SECONDS = 8
SRC = Path(__file__).resolve().parents[2] / "src"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("unshare", "nsenter", "tc", "ip")),
    reason="needs root, unshare, nsenter, tc and ip: a network namespace whose loopback can drop packets",
)

CLIENT = """
import datetime as dt, sys, time
import psycopg
from warehouse_core.adapters.postgres import PsycopgStore

url, seconds = sys.argv[1], int(sys.argv[2])
store = PsycopgStore(url, schema="vanished", vanished_client_seconds=seconds)
plain = psycopg.connect(url, autocommit=True)  # libpq's and the server's defaults
plain.execute("SELECT pg_advisory_lock(hashtext('the control lock'))")
with store.exclusive_poll() as polled, store.claim_session(dt.date(2026, 11, 26)) as claimed:
    pid = plain.execute("SELECT pg_backend_pid()").fetchone()[0]
    print(polled, claimed, pid, flush=True)
    time.sleep(600)
"""


class Namespace:
    """A network namespace of its own, held by a sleeping process; ``run`` a command inside it."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen(
            ["unshare", "--net", "sh", "-c", "ip link set lo up && echo up && exec sleep 3600"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.holder.stdout is not None and self.holder.stdout.readline().strip() == "up"
        self.path = "/proc/{}/ns/net".format(self.holder.pid)

    def command(self, *command: str) -> List[str]:
        return ["nsenter", "--net=" + self.path, *command]

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


class NamespacedCluster(PostgresCluster):
    """A throwaway PostgreSQL whose postmaster runs inside ``namespace``."""

    def __init__(self, directory: Path, namespace: Namespace) -> None:
        super().__init__(directory, port=5432)
        self.namespace = namespace

    def _run(self, *command: str) -> subprocess.CompletedProcess:
        user = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        return subprocess.run(
            self.namespace.command(*user, *command),
            check=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def unix_url(self) -> str:
        return "postgresql://postgres@/postgres?host={}&port={}".format(self.directory, self.port)


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    namespace = Namespace()
    yield namespace
    namespace.close()


@pytest.fixture
def cluster(namespace: Namespace) -> Iterator[NamespacedCluster]:
    directory = Path(tempfile.mkdtemp(prefix="warehouse-pg-netns-"))
    cluster = NamespacedCluster(directory, namespace)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(str(directory), ignore_errors=True)


def advisory_holders(cluster: NamespacedCluster) -> Set[int]:
    with psycopg.connect(cluster.unix_url(), autocommit=True) as connection:
        rows = connection.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchall()
    return {row[0] for row in rows}


def advisory_lock_count(cluster: NamespacedCluster) -> int:
    with psycopg.connect(cluster.unix_url(), autocommit=True) as connection:
        row = connection.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchone()
    return int(row[0]) if row else 0


def test_locks_of_a_client_whose_network_died_are_released_within_the_set_time(namespace, cluster):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    client = subprocess.Popen(
        namespace.command(
            sys.executable,
            "-c",
            CLIENT,
            "postgresql://postgres@127.0.0.1:{}/postgres".format(cluster.port),
            str(VANISHED_CLIENT_SECONDS),
        ),
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None
        polled, claimed, control = client.stdout.readline().split()
        assert (polled, claimed) == ("True", "True")
        assert advisory_lock_count(cluster) == 3  # the poll lock, the claim, the control lock

        subprocess.run(namespace.command("tc", "qdisc", "add", "dev", "lo", "root", "blackhole"), check=True)
        cut_at = time.monotonic()
        released: Optional[float] = None
        while time.monotonic() - cut_at < VANISHED_CLIENT_SECONDS + SLACK_SECONDS:
            if advisory_holders(cluster) == {int(control)}:
                released = time.monotonic() - cut_at
                break
            time.sleep(0.2)
        assert released is not None, "the vanished client's locks were still held {} s after its network died".format(
            VANISHED_CLIENT_SECONDS + SLACK_SECONDS
        )
        # The blackhole is real: the connection without the server-side limits still holds its lock.
        assert advisory_holders(cluster) == {int(control)}
        print("locks released {:.1f} s after the network died (limit {} s)".format(released, VANISHED_CLIENT_SECONDS))
    finally:
        client.kill()
        client.wait()
