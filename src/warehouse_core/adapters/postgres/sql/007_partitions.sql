-- 007: each imported file's lines and category links in partitions of their own (SPEC §10, §11),
-- so that a day's import costs the same on day 1000 as on day 1 and the retention drops a day's
-- partitions instead of deleting its rows.
--
-- invoice_line and invoice_line_category become tables partitioned by RANGE (file_id), with the
-- same names, columns and keys: every query on them reads as before. The service imports each
-- file into two new tables, invoice_line_<yyyymmdd>_<file id> and
-- invoice_line_category_<yyyymmdd>_<file id> (the day and the inbound_file.id), builds their keys
-- after the COPY and attaches them as the partitions for that one file id. A query that names the
-- day's file id (as the README's DBA query does) reads one partition of each table.
--
-- The rows already stored stay where they are, in one partition each, invoice_line_before_007
-- and invoice_line_category_before_007, for the file ids given before this migration; no row is
-- copied. Each is read once to check a CHECK constraint on file_id (a sequential scan: about a
-- second per 10 million rows), so that attaching it needs no scan of its own. The retention
-- removes the days stored there by DELETE, the later days by dropping their partitions. On a new
-- database both are empty and are dropped.
--
-- The renames and the attaches take an ACCESS EXCLUSIVE lock on both tables: stop the runner and
-- the web app first (or let lock_timeout end the wait after 5 s, with nothing changed). Apply it
-- by hand like 001, as one transaction (psql -v ON_ERROR_STOP=1 --single-transaction -c 'SET
-- search_path TO warehouse' -f 007_partitions.sql): the last statement records it. Deploy the
-- runner and the web together: an older version would copy into the partitioned tables a file id
-- that has no partition, and fail.

SET LOCAL lock_timeout = '5s';

ALTER TABLE invoice_line RENAME TO invoice_line_before_007;
ALTER TABLE invoice_line_before_007 RENAME CONSTRAINT invoice_line_pkey TO invoice_line_before_007_pkey;
ALTER TABLE invoice_line_category RENAME TO invoice_line_category_before_007;
ALTER TABLE invoice_line_category_before_007
    RENAME CONSTRAINT invoice_line_category_pkey TO invoice_line_category_before_007_pkey;

-- As in 001 (no foreign keys: see there; the CHECK constraints keep the names they had, which the
-- partition of the rows before 007 carries), partitioned by the file the lines came from.
CREATE TABLE invoice_line (
    file_id         bigint      NOT NULL,
    line_number     integer     NOT NULL,
    day             date        NOT NULL,
    invoice_number  text        NOT NULL,
    quantity        bigint      NOT NULL CONSTRAINT invoice_line_quantity_check CHECK (quantity >= 0),
    description     text        NOT NULL,
    value           numeric     NOT NULL,
    invoice_status  text        NOT NULL CONSTRAINT invoice_line_invoice_status_check
                                CHECK (invoice_status IN ('valid', 'not_found', 'already_exported')),
    PRIMARY KEY (file_id, line_number)
) PARTITION BY RANGE (file_id);

-- "All lines of category X" of a day is one indexed join on one partition: the key starts with
-- the category, within the day's file.
CREATE TABLE invoice_line_category (
    category_id  integer NOT NULL,
    file_id      bigint  NOT NULL,
    line_number  integer NOT NULL,
    PRIMARY KEY (category_id, file_id, line_number)
) PARTITION BY RANGE (file_id);

-- Every file id given so far is below the bound; every later one at or above it.
DO $$
DECLARE
    bound bigint := greatest(
        (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM inbound_file_id_seq),
        (SELECT max(id) + 1 FROM inbound_file),
        (SELECT max(file_id) + 1 FROM invoice_line_before_007));
    keep boolean := EXISTS (SELECT 1 FROM invoice_line_before_007)
        OR EXISTS (SELECT 1 FROM invoice_line_category_before_007);
    legacy text;
    parent text;
BEGIN
    -- Rows given an id by hand, above the sequence: the next file gets the bound itself.
    PERFORM setval('inbound_file_id_seq', bound - 1) WHERE bound > 1;
    FOREACH parent IN ARRAY ARRAY['invoice_line', 'invoice_line_category'] LOOP
        legacy := parent || '_before_007';
        IF keep THEN
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (file_id < %s)', legacy, legacy || '_file_id', bound);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%s)', parent, legacy, bound);
            EXECUTE format('COMMENT ON TABLE %I IS %L', legacy,
                'the rows stored before migration 007: file ids below ' || bound);
        ELSE
            EXECUTE format('DROP TABLE %I', legacy);
        END IF;
    END LOOP;
END
$$;

INSERT INTO schema_migration (version) VALUES ('007_partitions');
