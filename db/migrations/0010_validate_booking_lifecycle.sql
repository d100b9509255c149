-- Validates the constraints 0009 added NOT VALID, for the rows that were there
-- before it (every row written since was already checked). VALIDATE CONSTRAINT
-- takes a SHARE UPDATE EXCLUSIVE lock: reads and writes go on while it scans.
-- In its own migration, so its transaction is not the one that took 0009's
-- ACCESS EXCLUSIVE locks.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '10min';
SET LOCAL ROLE medbook_owner;

ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_rescheduled_from_fkey;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_rescheduled_to_fkey;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_attendance_recorded_by_fkey;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_status_check;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_cancellation_fields;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_attendance_fields;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_attended_after_start;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_rescheduled_to_cancelled;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_reschedule_not_self;
ALTER TABLE booking.appointment_history VALIDATE CONSTRAINT appointment_history_status_check;
ALTER TABLE booking.availability_slots VALIDATE CONSTRAINT availability_slots_version_positive;
ALTER TABLE booking.practitioner_booking_settings
    VALIDATE CONSTRAINT practitioner_booking_settings_version_positive;

RESET ROLE;
