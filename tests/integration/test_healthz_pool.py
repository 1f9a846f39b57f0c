"""/healthz asks PostgreSQL through the connection pool (SPEC §7), not with a connection per request."""

from __future__ import annotations

from warehouse_core.adapters.postgres import PsycopgStore
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
