"""How the PostgreSQL store connects: one pool however many threads ask first."""

from __future__ import annotations

import threading
import uuid
from typing import Any, Iterator, List

import pytest

from tests.conftest import SAMPLES
from tests.contract.test_store_contract import DAY, imported_day
from warehouse_devstack.servers import load_invoice_view


def test_threads_asking_at_once_share_one_pool(real_store):
    from warehouse_core.adapters.postgres import PsycopgStore

    store = PsycopgStore(real_store.url, schema=real_store.schema)
    barrier = threading.Barrier(8)
    pools: List[int] = []

    def first_request() -> None:
        barrier.wait(10)
        pools.append(id(store.pool))

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(pools) == 8 and len(set(pools)) == 1, "{} pools were opened".format(len(set(pools)))
    finally:
        store.close()


# --- the session settings each connection pins (SPEC §8) -----------------------------------


@pytest.fixture
def customer_database(postgres_server) -> Iterator[str]:
    """A database whose defaults differ from PostgreSQL's: day-first SQL dates, New York time."""
    import psycopg

    name = "customer_" + uuid.uuid4().hex[:10]
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute('CREATE DATABASE "{}"'.format(name))
        for setting in ("datestyle = 'SQL, DMY'", "timezone = 'America/New_York'", "intervalstyle = 'sql_standard'"):
            connection.execute('ALTER DATABASE "{}" SET {}'.format(name, setting))
    url = postgres_server.rsplit("/", 1)[0] + "/" + name
    load_invoice_view(url, SAMPLES / "invoice_view.sql")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "CREATE VIEW public.stamped_view AS SELECT v.*,"
            " (v.invoice_date + time '09:00') AT TIME ZONE 'Europe/Rome' AS issued_at FROM public.invoice_view AS v"
        )
    yield url
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute('DROP DATABASE IF EXISTS "{}" WITH (FORCE)'.format(name))


def test_export_text_does_not_follow_the_servers_datestyle_or_timezone(customer_database):
    from warehouse_core.adapters.postgres import PsycopgStore

    with psycopg_connect(customer_database) as connection:  # what the server does by default
        assert connection.execute("SELECT date '2026-11-20'::text").fetchone() == ("20/11/2026",)
    store = PsycopgStore(customer_database, schema="pinned", invoice_view="public.stamped_view", timezone="Europe/Rome")
    try:
        store.migrate()
        imported_day(store, invoices=("600000001", "600000002"))
        with store.unit_of_work() as uow:
            assert uow.refresh_invoice_statuses(DAY) == 2
        with store.export_lines(DAY, ("invoice_number", "invoice_date", "issued_at", "day"), skip=0) as blocks:
            assert b"".join(blocks) == (
                b"600000001|2026-11-20|2026-11-20 09:00:00+01|2026-11-26\n"
                b"600000002|2026-11-21|2026-11-21 09:00:00+01|2026-11-26\n"
            )
        with store.connection() as connection:
            assert connection.execute("SHOW datestyle").fetchone()[0].startswith("ISO")
            assert connection.execute("SHOW timezone").fetchone() == ("Europe/Rome",)
    finally:
        store.close()


def psycopg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


def test_a_view_that_is_not_there_is_a_configuration_error_naming_the_setting(real_store):
    from warehouse_core.adapters.postgres import PsycopgStore
    from warehouse_core.errors import ConfigurationError

    store = PsycopgStore(real_store.url, schema=real_store.schema, invoice_view="public.no_such_view")
    try:
        with pytest.raises(ConfigurationError, match="WAREHOUSE_INVOICE_VIEW names public.no_such_view"):
            store.missing_view_columns(("invoice_number",))
    finally:
        store.close()


def test_a_pool_whose_connections_are_all_lent_out_is_said_busy_not_down(real_store):
    """The checkout waits for one to come free, then asks the server directly: it answers, so busy."""
    import time

    from warehouse_core.adapters.postgres import PsycopgStore
    from warehouse_core.errors import DatabaseUnavailable

    store = PsycopgStore(real_store.url, schema=real_store.schema, pool_size=2, connect_timeout=2)
    try:
        with store.connection(), store.connection():
            pool = store.pool
            began = time.monotonic()
            with pytest.raises(
                DatabaseUnavailable, match="no database connection came free within 2 s: the database is busy"
            ):
                with store.connection():
                    pass
            assert time.monotonic() - began < 1.5 * store.connect_timeout
        with store.connection() as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
        assert store.pool is pool  # not taken for down: the pool was not replaced
    finally:
        store.close()
