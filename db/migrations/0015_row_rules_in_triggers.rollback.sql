-- squawk-ignore-file constraint-missing-not-valid
-- Back to CHECK constraints for the row rules of appointments,
-- availability_slots and appointment_history, validated here: a rollback must
-- leave the schema as 0014 had it (validated constraints), and rollback runs
-- each file in one transaction, so the scans of the three tables happen while
-- the ACCESS EXCLUSIVE locks of the ADDs are held (squawk's
-- constraint-missing-not-valid). Run it in a quiet window on a large database.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '10min';
SET LOCAL ROLE medbook_owner;

ALTER TABLE booking.appointments
    ADD CONSTRAINT appointments_attendance_fields CHECK (
        (status IN ('completed', 'no_show') AND attendance_recorded_at IS NOT NULL
            AND attendance_recorded_by IS NOT NULL)
        OR (status IN ('booked', 'cancelled') AND attendance_recorded_at IS NULL
            AND attendance_recorded_by IS NULL)
    ) NOT VALID,
    ADD CONSTRAINT appointments_attended_after_start CHECK (attendance_recorded_at >= start_time) NOT VALID,
    ADD CONSTRAINT appointments_booked_has_slot CHECK (status = 'cancelled' OR slot_id IS NOT NULL) NOT VALID,
    ADD CONSTRAINT appointments_cancellation_fields CHECK (
        (status <> 'cancelled' AND cancelled_at IS NULL AND cancelled_by IS NULL
            AND cancellation_reason IS NULL)
        OR (status = 'cancelled' AND cancelled_at IS NOT NULL AND cancelled_by IS NOT NULL)
    ) NOT VALID,
    ADD CONSTRAINT appointments_reason_length CHECK (char_length(cancellation_reason) <= 1000) NOT VALID,
    ADD CONSTRAINT appointments_reschedule_not_self
        CHECK (rescheduled_from <> id AND rescheduled_to <> id) NOT VALID,
    ADD CONSTRAINT appointments_rescheduled_to_cancelled
        CHECK (rescheduled_to IS NULL OR status = 'cancelled') NOT VALID,
    ADD CONSTRAINT appointments_status_check
        CHECK (status IN ('booked', 'cancelled', 'completed', 'no_show')) NOT VALID,
    ADD CONSTRAINT appointments_valid_range CHECK (end_time > start_time) NOT VALID,
    ADD CONSTRAINT appointments_version_positive CHECK (version > 0) NOT VALID;
ALTER TABLE booking.availability_slots
    ADD CONSTRAINT availability_slots_max_length CHECK (end_time - start_time <= interval '24 hours') NOT VALID,
    ADD CONSTRAINT availability_slots_status_check CHECK (status IN ('available', 'booked')) NOT VALID,
    ADD CONSTRAINT availability_slots_valid_range CHECK (end_time > start_time) NOT VALID,
    ADD CONSTRAINT availability_slots_version_positive CHECK (version > 0) NOT VALID;
ALTER TABLE booking.appointment_history
    ADD CONSTRAINT appointment_history_status_check CHECK (
        (from_status IS NULL AND to_status = 'booked')
        OR (from_status = 'booked' AND to_status IN ('cancelled', 'completed', 'no_show'))
    ) NOT VALID;

ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_attendance_fields;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_attended_after_start;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_booked_has_slot;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_cancellation_fields;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_reason_length;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_reschedule_not_self;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_rescheduled_to_cancelled;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_status_check;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_valid_range;
ALTER TABLE booking.appointments VALIDATE CONSTRAINT appointments_version_positive;
ALTER TABLE booking.availability_slots VALIDATE CONSTRAINT availability_slots_max_length;
ALTER TABLE booking.availability_slots VALIDATE CONSTRAINT availability_slots_status_check;
ALTER TABLE booking.availability_slots VALIDATE CONSTRAINT availability_slots_valid_range;
ALTER TABLE booking.availability_slots VALIDATE CONSTRAINT availability_slots_version_positive;
ALTER TABLE booking.appointment_history VALIDATE CONSTRAINT appointment_history_status_check;

DROP TRIGGER appointments_row_rules ON booking.appointments;
DROP TRIGGER availability_slots_row_rules ON booking.availability_slots;
DROP TRIGGER appointment_history_row_rules ON booking.appointment_history;
DROP FUNCTION booking.booking_check_appointment_row(), booking.booking_check_slot_row(),
    booking.booking_check_history_row();

RESET ROLE;
