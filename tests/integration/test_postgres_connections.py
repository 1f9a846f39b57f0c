"""How the PostgreSQL store connects: one pool however many threads ask first."""
from __future__ import annotations

import threading
from typing import List


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
