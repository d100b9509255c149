-- Validates the CHECK 0012 added NOT VALID, for the rows that were there before
-- it (every row written since was already checked). VALIDATE CONSTRAINT takes a
-- SHARE UPDATE EXCLUSIVE lock: reads and writes go on while it scans. In its
-- own migration, so its transaction is not the one that took 0012's ACCESS
-- EXCLUSIVE lock.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '10min';
SET LOCAL ROLE medbook_owner;

ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_version_positive;

RESET ROLE;
