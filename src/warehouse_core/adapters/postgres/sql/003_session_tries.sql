-- 003: the session worker's tries, counted in the database (SPEC §5: an unexpected error is
-- retried at most 3 times; a worker that dies at the same place every time must stop too).
-- Adds one column with a default; no existing row changes meaning. Apply it by hand like 001
-- (SET search_path TO warehouse; \i 003_session_tries.sql): the last statement records it.

ALTER TABLE work_session ADD COLUMN tries integer NOT NULL DEFAULT 0;

INSERT INTO schema_migration (version) VALUES ('003_session_tries');
