-- 004: the session phase 'renaming', committed together with the worker's last check before it
-- renames the export into place on the outbound server. A session found in it (a worker killed
-- there, a Close) is settled by asking the server whether the file is in place (SPEC §5).
-- Widens a CHECK constraint; no row changes. Apply it by hand like 001
-- (SET search_path TO warehouse; \i 004_renaming_phase.sql): the last statement records it.

SET LOCAL lock_timeout = '10s';

ALTER TABLE work_session DROP CONSTRAINT work_session_phase_check,
    ADD CONSTRAINT work_session_phase_check CHECK (phase IN ('exporting', 'uploading', 'renaming', 'watching'));

INSERT INTO schema_migration (version) VALUES ('004_renaming_phase');
