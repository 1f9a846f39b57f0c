-- 008: a mail's attachments, kept in the outbox with the mail (SPEC §6: a mail lists at most 200
-- invoices in its body; the whole list goes with it as invoices.csv). A new table, no row of an
-- existing one changes: mail_outbox is only referenced, so the CREATE takes a SHARE ROW EXCLUSIVE
-- lock on it for an instant (it waits for a transaction writing the outbox; the lock_timeout
-- ends that wait after 5 s with an error and nothing changed: apply it again). Apply it by hand
-- like 001, as one transaction (psql -v ON_ERROR_STOP=1 --single-transaction -c 'SET search_path
-- TO warehouse' -f 008_mail_attachments.sql): the last statement records it. A DBA reads a mail's
-- attachment with: SELECT name, content FROM mail_attachment WHERE mail_id = <mail_outbox.id>.
-- The content is text (a CSV), stored as it is sent. Rows go with their mail (ON DELETE CASCADE).

SET LOCAL lock_timeout = '5s';

CREATE TABLE mail_attachment (
    mail_id     bigint  NOT NULL REFERENCES mail_outbox (id) ON DELETE CASCADE,
    ordinal     integer NOT NULL,
    name        text    NOT NULL,
    media_type  text    NOT NULL,
    content     text    NOT NULL,
    PRIMARY KEY (mail_id, ordinal)
);

INSERT INTO schema_migration (version) VALUES ('008_mail_attachments');
