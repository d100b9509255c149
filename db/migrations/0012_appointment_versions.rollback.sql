-- squawk-ignore-file ban-drop-column
-- Removes what 0012 added: the trigger and the column (with its CHECK).
-- booking_bump_version() stays: 0009 created it and its rollback drops it.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

SET LOCAL ROLE medbook_owner;

DROP TRIGGER IF EXISTS appointments_bump_version ON booking.appointments;
ALTER TABLE booking.appointments DROP COLUMN IF EXISTS version;

RESET ROLE;
