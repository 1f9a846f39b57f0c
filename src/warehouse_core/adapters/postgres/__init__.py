"""The store on PostgreSQL, one module per role.

``store``: the pool and ``PsycopgStore``, which ties the others together; ``unit_of_work`` with
``files_and_lines``, ``sessions`` and ``outbox``: one transaction seen through each role;
``export``: the tuned COPY export; ``locks``: advisory locks; ``migrations``: the runner of
``sql/*.sql``.
"""

from warehouse_core.adapters.postgres.store import PsycopgStore
from warehouse_core.adapters.postgres.unit_of_work import PsycopgUnitOfWork

__all__ = ["PsycopgStore", "PsycopgUnitOfWork"]
