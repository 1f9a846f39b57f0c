-- The warehouse invoice service's own tables.
-- Applied by `warehouse-runner migrate` with search_path set to WAREHOUSE_DB_SCHEMA (default
-- "warehouse"), every pending file in one transaction. A DBA may apply it by hand as the README
-- says, as one transaction that stops at its first error:
--   psql -c 'CREATE SCHEMA warehouse'
--   psql -v ON_ERROR_STOP=1 --single-transaction -c 'SET search_path TO warehouse' -f 001_initial.sql
-- Each migration records itself (last statement), so a schema built by hand is one that
-- `migrate` and the services accept as up to date; apply each file once, in order (a second time
-- fails). Each first sets lock_timeout for its own transaction: a statement that would wait for a
-- lock behind a long transaction (and hold up every query queued after it) fails after 5 s
-- instead, with nothing changed.

SET LOCAL lock_timeout = '5s';

CREATE TABLE IF NOT EXISTS schema_migration (
    version     text        PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per received file, whatever became of it.
CREATE TABLE inbound_file (
    id              bigserial PRIMARY KEY,
    name            text        NOT NULL,
    day             date        NOT NULL,
    source          text        NOT NULL CHECK (source IN ('ftp', 'upload')),
    sha256          text        NOT NULL,
    declared_count  integer,
    actual_lines    integer     NOT NULL,
    status          text        NOT NULL CHECK (status IN ('imported', 'rejected', 'extra')),
    reasons         jsonb       NOT NULL DEFAULT '[]',
    archive_path    text        NOT NULL DEFAULT '',
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbound_file_name_sha256 ON inbound_file (name, sha256);
-- One imported file per day, guarded by the database even when two processes race.
CREATE UNIQUE INDEX inbound_file_one_import_a_day ON inbound_file (day) WHERE status = 'imported';

-- The stored lines of imported files, one row per line of the file; several lines may carry the
-- same invoice. The two bulk tables below have no foreign-key constraints: PostgreSQL checks those
-- row by row, which would more than double the cost of a million-line import. The service writes
-- both tables from one file in one transaction, so their references hold by construction:
-- invoice_line.file_id is an inbound_file.id, invoice_line_category.category_id a category.id.
CREATE TABLE invoice_line (
    file_id         bigint      NOT NULL,
    line_number     integer     NOT NULL,
    day             date        NOT NULL,
    invoice_number  text        NOT NULL,
    quantity        bigint      NOT NULL CHECK (quantity >= 0),
    description     text        NOT NULL,
    value           numeric     NOT NULL,
    invoice_status  text        NOT NULL CHECK (invoice_status IN ('valid', 'not_found', 'already_exported')),
    PRIMARY KEY (file_id, line_number)
);

-- Normalised categories (trimmed, blanks folded, lower case) and their link to lines.
CREATE TABLE category (
    id    serial PRIMARY KEY,
    name  text NOT NULL UNIQUE
);
-- "All lines of category X" is one indexed join: the key starts with the category.
CREATE TABLE invoice_line_category (
    category_id  integer NOT NULL,
    file_id      bigint  NOT NULL,
    line_number  integer NOT NULL,
    PRIMARY KEY (category_id, file_id, line_number)
);

-- One operator session per day.
CREATE TABLE work_session (
    day          date        PRIMARY KEY,
    state        text        NOT NULL CHECK (state IN ('ready', 'running', 'completed', 'failed', 'closed')),
    -- Where a running session is, so that a restarted worker resumes at the right step.
    phase        text        CHECK (phase IN ('exporting', 'uploading', 'watching')),
    total        integer     NOT NULL DEFAULT 0,
    processed    integer     NOT NULL DEFAULT 0,
    started_at   timestamptz,
    finished_at  timestamptz,
    export_file  text,
    detail       text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Invoices shipped by a completed session, so that a later day knows them as already exported.
CREATE TABLE exported_invoice (
    invoice_number  text NOT NULL,
    day             date NOT NULL,
    PRIMARY KEY (invoice_number, day)
);

-- Mails are written here in the same transaction as the change they report, then delivered.
CREATE TABLE mail_outbox (
    id               bigserial PRIMARY KEY,
    event            text        NOT NULL,
    day              date        NOT NULL,
    subject          text        NOT NULL,
    body_text        text        NOT NULL,
    body_html        text        NOT NULL,
    once_key         text        UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    sent_at          timestamptz,
    last_error       text
);
CREATE INDEX mail_outbox_unsent ON mail_outbox (id) WHERE sent_at IS NULL;

INSERT INTO schema_migration (version) VALUES ('001_initial');
