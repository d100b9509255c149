-- Appointments carry a version, as slots and settings do since 0009: bumped by
-- trigger on every update (a cancellation, a reschedule's link, attendance,
-- slot_id cleared when a cancelled appointment's slot is deleted), whatever path
-- made it. The FHIR facade sends it as meta.versionId and ETag W/"n", and a
-- FHIR update or patch with If-Match is checked against it under the row lock
-- (cancel_appointment(), replace_appointment()).
--
-- The column's default fills existing rows without a rewrite (a constant
-- default is stored in the catalogue); the CHECK is added NOT VALID and
-- validated by 0013 outside this transaction's ACCESS EXCLUSIVE lock.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

SET LOCAL ROLE medbook_owner;

ALTER TABLE booking.appointments
    ADD COLUMN version bigint NOT NULL DEFAULT 1,
    ADD CONSTRAINT appointments_version_positive CHECK (version > 0) NOT VALID;
COMMENT ON COLUMN booking.appointments.version IS
    'Bumped by trigger on every update (cancellation, reschedule link, attendance, slot deleted); the FHIR '
    'facade''s meta.versionId and weak ETag, checked against If-Match by cancel_appointment() and '
    'replace_appointment().';

-- Fires before appointments_guard_change (name order), which does not look at version.
CREATE TRIGGER appointments_bump_version
    BEFORE UPDATE ON booking.appointments
    FOR EACH ROW EXECUTE FUNCTION booking.booking_bump_version();

RESET ROLE;
