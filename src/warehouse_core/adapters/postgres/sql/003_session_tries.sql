-- 003: the session worker's tries, counted in the database (SPEC §5: an unexpected error is
-- retried at most 3 times; a worker that dies at the same place every time must stop too).
-- Adds one column, 0 in every existing row. The ALTER TABLE needs an ACCESS EXCLUSIVE lock on
-- work_session: held for an instant (PostgreSQL 11 and later add a column with a constant default
-- without rewriting the table), but it waits for every open transaction that read the table, and
-- every query on it waits behind the ALTER. The lock_timeout ends that wait after 5 s with an
-- error and nothing changed; apply it again once that transaction has ended. Apply it by hand
-- like 001, as one transaction (psql -v ON_ERROR_STOP=1 --single-transaction -c 'SET search_path
-- TO warehouse' -f 003_session_tries.sql): the last statement records it.

SET LOCAL lock_timeout = '5s';

ALTER TABLE work_session ADD COLUMN tries integer NOT NULL DEFAULT 0;

INSERT INTO schema_migration (version) VALUES ('003_session_tries');
