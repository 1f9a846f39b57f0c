-- 009: where the remote logs ended when a session asked for its rename (SPEC §5: a watch only
-- accepts lines written after its own upload). work_session.log_positions maps each log's path to
-- its size at that moment, e.g. {"/var/log/importer-20261126.log": 5120}; NULL when none was
-- read (a session from before this change, or a log that could not be read): the watch then reads
-- the logs from their start, as before.
--
-- Adds a nullable column (no table rewrite, no row changes). The ALTER TABLE needs an ACCESS
-- EXCLUSIVE lock on work_session: it waits for every open transaction that read the table, and
-- every query on it waits behind the ALTER. The lock_timeout ends that wait after 5 s with an error
-- and nothing changed; apply it again once that transaction has ended. Apply it by hand like 001,
-- as one transaction (psql -v ON_ERROR_STOP=1 --single-transaction -c 'SET search_path TO
-- warehouse' -f 009_log_positions.sql): the last statement records it. An older version ignores
-- the column.

SET LOCAL lock_timeout = '5s';

ALTER TABLE work_session ADD COLUMN log_positions jsonb;

INSERT INTO schema_migration (version) VALUES ('009_log_positions');
