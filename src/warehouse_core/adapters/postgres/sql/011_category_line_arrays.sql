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
-- Every partition of invoice_line_category is read once and written again as arrays (about 5 s per
-- 10 million links on a warm cache; more when they must be read from disk; the arrays take about
-- 5% of the old links' space, and the old links' space is freed at the commit), then
-- invoice_line_category is dropped; the grants on it are given again on the view. Stop the runner
-- and the web app of every host first: 011 locks invoice_line_category for its whole run, so an
-- older release's import waits, then fails (its file stays on the server for the next poll).
-- A view of your own over invoice_line_category stops 011 at its start, with its name: drop it,
-- apply 011, then create it again (the columns are the same). Apply it by hand like 001,
-- as one transaction (psql -v ON_ERROR_STOP=1 --single-transaction -c 'SET search_path TO
-- warehouse' -f 011_category_line_arrays.sql): the last statement records it.

SET LOCAL lock_timeout = '5s';

-- No import of an older release may attach links while they are rewritten, and none is lost by
-- the drop below: it waits for this lock (until its own lock timeout), 011 waits for none.
LOCK TABLE invoice_line_category IN ACCESS EXCLUSIVE MODE;

DO $$
DECLARE
    readers text;
BEGIN
    SELECT string_agg(DISTINCT v.oid::regclass::text, ', ') INTO readers
    FROM pg_depend d
    JOIN pg_rewrite r ON r.oid = d.objid
    JOIN pg_class v ON v.oid = r.ev_class
    WHERE d.classid = 'pg_rewrite'::regclass
      AND d.refobjid IN (SELECT 'invoice_line_category'::regclass UNION ALL
                         SELECT inhrelid FROM pg_inherits WHERE inhparent = 'invoice_line_category'::regclass)
      AND v.oid <> d.refobjid;
    IF readers IS NOT NULL THEN
        RAISE EXCEPTION 'migration 011 turns invoice_line_category into a view, and these views read it: %', readers
            USING HINT = 'drop them, start again, then create them again: invoice_line_category keeps its columns';
    END IF;
END
$$;

CREATE TABLE category_lines (
    category_id   integer   NOT NULL,
    file_id       bigint    NOT NULL,
    line_numbers  integer[] NOT NULL,
    PRIMARY KEY (category_id, file_id)
) PARTITION BY RANGE (file_id);

-- Whoever applies this file (the service's user at its start, or a DBA by hand), the new tables
-- and the view belong to the owner of the table they replace: the service creates and attaches
-- their partitions, and drops them.
DO $$
DECLARE
    links record;
    arrays text;
    owner_ text := (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'invoice_line_category'::regclass);
BEGIN
    EXECUTE format('ALTER TABLE category_lines OWNER TO %I', owner_);
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
        EXECUTE format('ALTER TABLE %I OWNER TO %I', arrays, owner_);
        IF links.name = 'invoice_line_category_before_007' THEN
            EXECUTE format('COMMENT ON TABLE %I IS %L', arrays,
                obj_description('invoice_line_before_007'::regclass, 'pg_class'));
        END IF;
    END LOOP;
END
$$;

ALTER TABLE invoice_line_category RENAME TO invoice_line_category_before_011;

-- The links as they were: one row per (category, file, line).
CREATE VIEW invoice_line_category AS
    SELECT s.category_id, s.file_id, n.line_number
    FROM category_lines AS s CROSS JOIN LATERAL unnest(s.line_numbers) AS n (line_number);

COMMENT ON VIEW invoice_line_category IS
    'one row per category of a stored line, from category_lines (one row per category and file)';

-- The view is the old table's owner's; whoever could read the old table can read the view (and
-- category_lines, which it reads).
DO $$
DECLARE
    grant_ record;
BEGIN
    EXECUTE format('ALTER VIEW invoice_line_category OWNER TO %I',
        (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'invoice_line_category_before_011'::regclass));
    FOR grant_ IN
        SELECT a.privilege_type, a.is_grantable,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) AS a
        WHERE c.oid = 'invoice_line_category_before_011'::regclass AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT %s ON invoice_line_category, category_lines TO %s%s', grant_.privilege_type,
            grant_.grantee, CASE WHEN grant_.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$$;

DROP TABLE invoice_line_category_before_011;

INSERT INTO schema_migration (version) VALUES ('011_category_line_arrays');
