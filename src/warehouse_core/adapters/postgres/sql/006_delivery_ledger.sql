-- 006: the delivery ledger (SPEC §5 "The delivery ledger"). work_session.delivery says whether a
-- day's export reached the consumer: 'no', 'yes' or 'unknown' (NULL: no rename was ever asked for).
-- exported_invoice stays what it was, the invoices a day holds: from now on a day holds them from
-- the moment it asks for its rename (delivery 'unknown'), until proof that the consumer never saw
-- the file ('no') releases them; a later export treats them as exported.
--
-- The backfill reads what earlier versions left:
--   retried with --redeliver (a session-retried event says so) -> yes (a run had delivered)
--   completed                                          -> yes
--   running, failed or closed in phase watching        -> yes (the rename comes before the watch)
--   closed in phase renaming, its detail saying the file was delivered -> yes
--   closed in phase renaming otherwise (the fence set the file aside)  -> no
--   phase renaming while running or failed, phase settling             -> unknown
--   anything else                                      -> NULL (no rename was asked for)
-- and every day whose delivery is now 'yes' or 'unknown' holds its valid invoices (a day that
-- failed while watching before this change recorded none: SPEC §5 says they reached the consumer).
--
-- Adds a nullable column with a CHECK (no table rewrite) and updates a row a day. The ALTER TABLE
-- needs an ACCESS EXCLUSIVE lock on work_session: it waits for every open transaction that read
-- the table, and every query on it waits behind the ALTER. The lock_timeout ends that wait after
-- 5 s with an error and nothing changed; apply it again once that transaction has ended. Apply it
-- by hand like 001, as one transaction (psql -v ON_ERROR_STOP=1 --single-transaction -c 'SET
-- search_path TO warehouse' -f 006_delivery_ledger.sql): the last statement records it. Deploy
-- the runner and the web together: an older version does not hold a day's invoices at its rename.

SET LOCAL lock_timeout = '5s';

ALTER TABLE work_session ADD COLUMN delivery text CONSTRAINT work_session_delivery_check
    CHECK (delivery IN ('no', 'yes', 'unknown'));

UPDATE work_session SET delivery = CASE
    -- Retried with --redeliver: an earlier run's file had reached the consumer (the old retry
    -- recorded nothing and reset the phase; its event says so), whatever the day did since.
    WHEN EXISTS (SELECT 1 FROM event AS e WHERE e.day = work_session.day AND e.kind = 'session-retried'
                 AND e.detail->>'redeliver' = 'true') THEN 'yes'
    WHEN state = 'completed' THEN 'yes'
    WHEN phase = 'watching' AND state IN ('running', 'failed', 'closed') THEN 'yes'
    WHEN state = 'closed' AND phase = 'renaming' AND detail LIKE 'closed by an operator after % was delivered%' THEN 'yes'
    WHEN state = 'closed' AND phase = 'renaming' THEN 'no'
    WHEN state IN ('running', 'failed') AND phase = 'renaming' THEN 'unknown'
    WHEN phase = 'settling' THEN 'unknown'
END;

INSERT INTO exported_invoice (invoice_number, day)
    SELECT DISTINCT l.invoice_number, s.day
    FROM invoice_line AS l
    JOIN inbound_file AS f ON f.id = l.file_id AND f.status = 'imported'
    JOIN work_session AS s ON s.day = f.day
    WHERE s.delivery IN ('yes', 'unknown') AND l.invoice_status = 'valid'
    ON CONFLICT DO NOTHING;

-- The runner asks about every unknown day at each round (a handful of rows at most).
CREATE INDEX work_session_delivery_unknown ON work_session (day) WHERE delivery = 'unknown';

INSERT INTO schema_migration (version) VALUES ('006_delivery_ledger');
