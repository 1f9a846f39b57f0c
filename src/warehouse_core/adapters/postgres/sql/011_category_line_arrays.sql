-- 011: a file's category links as one row per category, its line numbers in an array (SPEC §10,
-- §11): the links of a 1M-line file were 1.9M rows of three numbers, 145 of the 316 bytes a stored
-- line cost on disk with their key, and a third of the import's time; as arrays they are about 50
-- rows, 4 bytes a link.
--
-- category_lines (category_id, file_id, line_numbers integer[], ascending, each line once) is
-- partitioned like invoice_line, by RANGE (file_id): each imported file has a partition
-- category_lines_<yyyymmdd>_<file id> beside invoice_line_<yyyymmdd>_<file id>, and the rows stored
-- before 007 sit in category_lines_before_007. invoice_line_category becomes a view over it with
-- the columns it had (category_id, file_id, line_number), so the DBA's queries read as before: one
-- that names a day's file id reads that file's partitions only, and "all lines of category X" is
-- still one indexed join (the category's array, unnested, against invoice_line's key).
--
-- Every partition of invoice_line_category is read once and written again as arrays (about a
-- second per 10 million links), then invoice_line_category is dropped. Stop the runner and the web
-- app first: an older release would COPY links into the view, and fail. Apply it by hand like 001,
-- as one transaction (psql -v ON_ERROR_STOP=1 --single-transaction -c 'SET search_path TO
-- warehouse' -f 011_category_line_arrays.sql): the last statement records it.

SET LOCAL lock_timeout = '5s';

CREATE TABLE category_lines (
    category_id   integer   NOT NULL,
    file_id       bigint    NOT NULL,
    line_numbers  integer[] NOT NULL,
    PRIMARY KEY (category_id, file_id)
) PARTITION BY RANGE (file_id);

DO $$
DECLARE
    links record;
    arrays text;
BEGIN
    FOR links IN
        SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'invoice_line_category'::regclass
    LOOP
        arrays := 'category_lines' || substr(links.name, length('invoice_line_category') + 1);
        EXECUTE format('CREATE TABLE %I (LIKE category_lines INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', arrays);
        EXECUTE format('INSERT INTO %I SELECT category_id, file_id, array_agg(DISTINCT line_number ORDER BY line_number)'
            ' FROM %I GROUP BY category_id, file_id', arrays, links.name);
        EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (category_id, file_id)', arrays);
        EXECUTE format('ALTER TABLE category_lines ATTACH PARTITION %I %s', arrays, links.bound);
        IF links.name = 'invoice_line_category_before_007' THEN
            EXECUTE format('COMMENT ON TABLE %I IS %L', arrays,
                obj_description('invoice_line_before_007'::regclass, 'pg_class'));
        END IF;
    END LOOP;
END
$$;

DROP TABLE invoice_line_category;

-- The links as they were: one row per (category, file, line).
CREATE VIEW invoice_line_category AS
    SELECT s.category_id, s.file_id, n.line_number
    FROM category_lines AS s CROSS JOIN LATERAL unnest(s.line_numbers) AS n (line_number);

COMMENT ON VIEW invoice_line_category IS
    'one row per category of a stored line, from category_lines (one row per category and file)';

INSERT INTO schema_migration (version) VALUES ('011_category_line_arrays');
