"""The migration files as a DBA reads them (SPEC §10): each one ends by recording itself, the same
way, and none can wait forever on a lock behind a long transaction."""

from __future__ import annotations

import re

import pytest

from warehouse_core.adapters.postgres.migrations import MIGRATIONS

FILES = sorted(MIGRATIONS.glob("*.sql"))


def statements(text: str) -> list:
    without_comments = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in without_comments.split(";") if s.strip()]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_each_migration_ends_by_recording_itself_with_a_plain_insert(path):
    """A file applied twice by hand must fail loudly at its record, never pass silently."""
    last = statements(path.read_text(encoding="utf-8"))[-1]
    assert last == "INSERT INTO schema_migration (version) VALUES ('{}')".format(path.stem)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_each_migration_first_sets_a_lock_timeout_for_its_own_transaction(path):
    """ALTER TABLE waits for every transaction that touched the table, and every query after it
    queues behind it: a migration gives up after a few seconds instead (lock_timeout), and only
    for its own transaction (SET LOCAL: the runner's, or the DBA's --single-transaction)."""
    first = statements(path.read_text(encoding="utf-8"))[0]
    timeout = re.fullmatch(r"SET LOCAL lock_timeout = '(\d+)s'", first)
    assert timeout is not None, first
    assert 1 <= int(timeout.group(1)) <= 10
