"""/healthz asks PostgreSQL through the connection pool (SPEC §7), not with a connection per request."""

from __future__ import annotations

import socket
import time

import pytest

from warehouse_core.adapters.postgres import PsycopgStore
from warehouse_core.errors import DatabaseUnavailable
from warehouse_devstack.servers import free_port


def test_ping_borrows_a_pooled_connection_instead_of_opening_one(real_store):
    assert real_store.ping()
    before = real_store.pool.get_stats()
    for _ in range(20):
        assert real_store.ping()
    after = real_store.pool.get_stats()
    assert after.get("requests_num", 0) - before.get("requests_num", 0) == 20
    assert after.get("connections_num", 0) == before.get("connections_num", 0)


def test_ping_of_a_database_that_is_down_is_false_not_an_error():
    store = PsycopgStore("postgresql://postgres@127.0.0.1:{}/warehouse".format(free_port()), connect_timeout=1)
    try:
        assert store.ping() is False
    finally:
        store.close()


def test_a_database_host_that_never_answers_is_given_up_within_the_connect_timeout():
    """A host that takes the TCP connection and then says nothing (a hung server, a firewall that
    blackholes): libpq's connect_timeout must end the wait, not the kernel's minutes-long retries."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # never accepted: connections complete in the kernel and then hear nothing
    # libpq counts whole seconds and takes anything below 2 as 2.
    url = "postgresql://postgres@127.0.0.1:{}/warehouse".format(silent.getsockname()[1])
    store = PsycopgStore(url, connect_timeout=2)
    try:
        started = time.monotonic()
        assert store.ping() is False
        assert store.ping() is False  # known down now: one connect attempt, not the pool's wait too
        # Each ping within the connect timeout: the first asks directly instead of waiting on a pool
        # that has no connection to give, the second knows the database is down.
        assert time.monotonic() - started < 2 * 1.5 * store.connect_timeout
    finally:
        store.close()
        silent.close()


def test_database_unavailable_carries_postgresqls_reason_for_the_log_line():
    """The runner logs one line a tick while the database is down: it names why (refused here)."""
    store = PsycopgStore("postgresql://postgres@127.0.0.1:{}/warehouse".format(free_port()), connect_timeout=2)
    try:
        with pytest.raises(DatabaseUnavailable, match=r"^the database does not answer: .*refused"):
            with store.connection():
                pass
    finally:
        store.close()
