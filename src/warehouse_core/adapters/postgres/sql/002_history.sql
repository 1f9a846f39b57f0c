-- 002: the day in hindsight (history, timeline, audit, metrics, retention).
-- Adds tables, nullable columns and indexes; no existing row is changed. Apply it by hand like
-- 001, as one transaction (psql -v ON_ERROR_STOP=1 --single-transaction -c 'SET search_path TO
-- warehouse' -f 002_history.sql): the last statement records it.

SET LOCAL lock_timeout = '5s';

-- The day's timeline and the audit trail, written in the same transaction as the change each row
-- reports. Append-only: rows are never updated or deleted.
CREATE TABLE event (
    id      bigserial   PRIMARY KEY,
    day     date        NOT NULL,
    at      timestamptz NOT NULL,
    kind    text        NOT NULL,
    actor   text        NOT NULL,
    detail  jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX event_day ON event (day, id);

CREATE FUNCTION event_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event table is append-only';
END
$$;
CREATE TRIGGER event_is_append_only BEFORE UPDATE OR DELETE ON event
    FOR EACH STATEMENT EXECUTE FUNCTION event_is_append_only();

-- Counts stored when a file is imported, so that no page counts lines again (NULL for files
-- imported before this migration); the problems of a rejected file beyond the 100 kept reasons.
ALTER TABLE inbound_file
    ADD COLUMN stored_lines        integer,
    ADD COLUMN ignored_lines       integer,
    ADD COLUMN not_found_lines     integer,
    ADD COLUMN valid_lines         integer,
    ADD COLUMN problem_count       integer,
    -- Set by the daily clean-up when the archived copy was deleted (WAREHOUSE_ARCHIVE_KEEP_DAYS).
    ADD COLUMN archive_deleted_at  timestamptz;
CREATE INDEX inbound_file_day ON inbound_file (day, id);

ALTER TABLE work_session ADD COLUMN export_deleted_at timestamptz;

CREATE INDEX mail_outbox_day ON mail_outbox (day);

-- The last outcome of the poll and of each dependency check the scheduler runs (at most every
-- 5 minutes): /metrics reads them, so every process reports the same.
CREATE TABLE service_check (
    name             text        PRIMARY KEY,
    ok               boolean     NOT NULL,
    checked_at       timestamptz NOT NULL,
    detail           text        NOT NULL DEFAULT '',
    last_success_at  timestamptz,
    failures         bigint      NOT NULL DEFAULT 0
);

INSERT INTO schema_migration (version) VALUES ('002_history');
