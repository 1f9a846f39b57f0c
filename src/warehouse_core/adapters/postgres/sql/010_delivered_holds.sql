-- 010: the delivery ledger tells a hold proven delivered from one only pending (SPEC §5 "The
-- delivery ledger", review A of issue 18). exported_invoice.delivered is true once the consumer
-- got the day's file (delivery 'yes'): such a row is never removed again. A row held for a rename
-- not yet settled is false; proof that the rename never happened removes only those. A redelivery
-- (session retry --redeliver) holds the invoices only it exports as false: when its file never
-- arrives they are free again, and what the first delivery shipped stays held.
--
-- Adds a column with a constant default (no table rewrite) and updates the rows of the days whose
-- delivery is 'unknown' (a handful). The ALTER TABLE needs an ACCESS EXCLUSIVE lock on
-- exported_invoice: it waits for every open transaction that read the table, and every query on it
-- waits behind the ALTER. The lock_timeout ends that wait after 5 s with an error and nothing
-- changed; apply it again once that transaction has ended. Apply it by hand like 001, as one
-- transaction (psql -v ON_ERROR_STOP=1 --single-transaction -c 'SET search_path TO warehouse' -f
-- 010_delivered_holds.sql): the last statement records it. Deploy the runner and the web together:
-- an older version releases a redelivered day's delivered holds with its pending ones.

SET LOCAL lock_timeout = '5s';

ALTER TABLE exported_invoice ADD COLUMN delivered boolean NOT NULL DEFAULT true;

UPDATE exported_invoice SET delivered = false
    WHERE day IN (SELECT day FROM work_session WHERE delivery = 'unknown');

INSERT INTO schema_migration (version) VALUES ('010_delivered_holds');
