-- 005: the session phase 'settling': a session closed while its worker was renaming the export
-- into place, until the outbound server has said whether the rename went through (SPEC §5; the
-- runner asks again at each round). Widens a CHECK constraint; no row changes. The ALTER TABLE
-- needs an ACCESS EXCLUSIVE lock on work_session and reads the table once to check the constraint
-- (a row a day: an instant), but it waits for every open transaction that read the table, and
-- every query on it waits behind the ALTER. The lock_timeout ends that wait after 5 s with an
-- error and nothing changed; apply it again once that transaction has ended. Apply it by hand like
-- 001, as one transaction (psql -v ON_ERROR_STOP=1 --single-transaction -c 'SET search_path TO
-- warehouse' -f 005_settling_phase.sql): the last statement records it. Deploy the runner and the
-- web together: an older version cannot read a session whose phase is 'settling'.

SET LOCAL lock_timeout = '5s';

ALTER TABLE work_session DROP CONSTRAINT work_session_phase_check,
    ADD CONSTRAINT work_session_phase_check
    CHECK (phase IN ('exporting', 'uploading', 'renaming', 'watching', 'settling'));

INSERT INTO schema_migration (version) VALUES ('005_settling_phase');
