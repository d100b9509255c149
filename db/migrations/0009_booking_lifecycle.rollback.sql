-- squawk-ignore-file ban-drop-table, ban-drop-column, constraint-missing-not-valid, require-concurrent-index-creation, require-concurrent-index-deletion
-- A rollback removes what its migration added (the table, the columns, the
-- indexes) and puts back the constraints exactly as they were, validated.
--
-- Fails while any appointment is completed, no_show or rescheduled: those
-- states have no place in the older schema, and appointments are never deleted.
-- The trigger functions get back the bodies migrations 0003 and 0008 gave them.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

SET LOCAL ROLE medbook_owner;

DROP TABLE IF EXISTS booking.idempotency_keys;

DROP TRIGGER IF EXISTS availability_slots_bump_version ON booking.availability_slots;
DROP TRIGGER IF EXISTS practitioner_booking_settings_bump_version ON booking.practitioner_booking_settings;
DROP FUNCTION IF EXISTS booking.booking_bump_version();
ALTER TABLE booking.availability_slots DROP COLUMN IF EXISTS version;
ALTER TABLE booking.practitioner_booking_settings DROP COLUMN IF EXISTS version;

DROP TRIGGER IF EXISTS appointments_reschedule_link ON booking.appointments;
DROP FUNCTION IF EXISTS booking.booking_assert_reschedule_link();

ALTER TABLE booking.appointment_history
    DROP CONSTRAINT appointment_history_status_check,
    ADD CONSTRAINT appointment_history_status_check CHECK (
        (from_status IS NULL AND to_status = 'booked')
        OR (from_status = 'booked' AND to_status = 'cancelled')
    );

DROP INDEX IF EXISTS booking.appointments_by_patient;
CREATE UNIQUE INDEX appointments_one_booked_per_slot
    ON booking.appointments (slot_id)
    WHERE status = 'booked';
DROP INDEX booking.appointments_one_holder_per_slot;

ALTER TABLE booking.appointments
    DROP CONSTRAINT appointments_rescheduled_from_fkey,
    DROP CONSTRAINT appointments_rescheduled_to_fkey,
    DROP CONSTRAINT appointments_attendance_recorded_by_fkey,
    DROP CONSTRAINT appointments_attendance_fields,
    DROP CONSTRAINT appointments_attended_after_start,
    DROP CONSTRAINT appointments_rescheduled_to_cancelled,
    DROP CONSTRAINT appointments_reschedule_not_self,
    DROP COLUMN rescheduled_from,
    DROP COLUMN rescheduled_to,
    DROP COLUMN attendance_recorded_at,
    DROP COLUMN attendance_recorded_by,
    DROP CONSTRAINT appointments_status_check,
    ADD CONSTRAINT appointments_status_check CHECK (status IN ('booked', 'cancelled')),
    DROP CONSTRAINT appointments_cancellation_fields,
    ADD CONSTRAINT appointments_cancellation_fields CHECK (
        (status = 'booked' AND cancelled_at IS NULL AND cancelled_by IS NULL
            AND cancellation_reason IS NULL)
        OR (status = 'cancelled' AND cancelled_at IS NOT NULL AND cancelled_by IS NOT NULL)
    );
COMMENT ON COLUMN booking.appointments.status IS NULL;
COMMENT ON TABLE booking.appointment_history IS
    'One row per appointment state change (booking, cancellation), written by trigger; append-only.';

CREATE OR REPLACE FUNCTION booking.booking_assert_slot_status_consistent() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Deferred to commit, for every slot row a transaction inserted or whose
   status it changed: the slot is 'booked' exactly when a booked appointment
   holds it. One probe of appointments_one_booked_per_slot.
   SECURITY DEFINER because before PostgreSQL 17 a deferred trigger runs as the
   role current at COMMIT (medbook_api, which cannot read the tables), not as
   the booking function that queued it. It only reads. */
BEGIN
    IF (NEW.status = 'booked') IS DISTINCT FROM EXISTS (
            SELECT 1 FROM appointments a WHERE a.slot_id = NEW.id AND a.status = 'booked') THEN
        RAISE EXCEPTION 'slot % has status % and a booked appointment count that disagrees', NEW.id, NEW.status
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'availability_slots_booking_consistency',
                  HINT = 'Book and cancel through book_slot() and cancel_appointment().';
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION booking.booking_assert_appointment_slots_consistent() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Deferred to commit, for every appointment row a transaction inserted or
   whose status or slot it changed: the slot it holds, and on an update the
   slot it held (ON DELETE SET NULL moves a cancelled appointment off its
   slot), each agree with their booked appointments. One probe of
   appointments_one_booked_per_slot per slot, since this runs once per booking
   and once per cancellation. SECURITY DEFINER as
   booking_assert_slot_status_consistent(); it only reads. */
DECLARE
    v_slot_id bigint;
BEGIN
    FOREACH v_slot_id IN ARRAY ARRAY[CASE WHEN TG_OP = 'UPDATE' THEN OLD.slot_id END, NEW.slot_id] LOOP
        IF v_slot_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM availability_slots s
                 WHERE s.id = v_slot_id
                   AND (s.status = 'booked') IS DISTINCT FROM EXISTS (
                       SELECT 1 FROM appointments a WHERE a.slot_id = s.id AND a.status = 'booked')) THEN
            RAISE EXCEPTION 'slot %''s status disagrees with its booked appointments', v_slot_id
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'availability_slots_booking_consistency',
                      HINT = 'Book and cancel through book_slot() and cancel_appointment().';
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION booking.booking_guard_appointment_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Appointments move one way only, booked -> cancelled, and keep their facts.
   The one other change allowed is slot_id -> NULL when a cancelled
   appointment's slot is deleted (ON DELETE SET NULL). */
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'appointment % cannot be deleted', OLD.id
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'Cancel it with cancel_appointment(); appointments are kept for history.';
    END IF;
    IF NEW.id <> OLD.id OR NEW.patient_id <> OLD.patient_id
       OR NEW.practitioner_id <> OLD.practitioner_id
       OR NEW.start_time <> OLD.start_time OR NEW.end_time <> OLD.end_time
       OR NEW.booked_at <> OLD.booked_at
       OR (NEW.slot_id IS DISTINCT FROM OLD.slot_id AND NOT (NEW.slot_id IS NULL AND OLD.status = 'cancelled'))
    THEN
        RAISE EXCEPTION 'appointment % cannot be changed except by cancelling it', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.status = 'cancelled' AND (NEW.status <> 'cancelled'
            OR NEW.cancelled_at IS DISTINCT FROM OLD.cancelled_at
            OR NEW.cancelled_by IS DISTINCT FROM OLD.cancelled_by
            OR NEW.cancellation_reason IS DISTINCT FROM OLD.cancellation_reason) THEN
        RAISE EXCEPTION 'appointment % is cancelled and cannot change', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION booking.booking_record_history() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Writes appointment_history for every state change, whatever path made it:
   the booking (actor: the patient's user) and the cancellation (actor: cancelled_by). */
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO appointment_history (appointment_id, from_status, to_status, actor_user_id, changed_at)
        SELECT NEW.id, NULL, NEW.status, p.user_id, NEW.booked_at
          FROM patients p WHERE p.id = NEW.patient_id;
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO appointment_history (appointment_id, from_status, to_status, actor_user_id, changed_at)
        VALUES (NEW.id, OLD.status, NEW.status, NEW.cancelled_by, NEW.cancelled_at);
    END IF;
    RETURN NULL;
END
$$;

RESET ROLE;
REVOKE USAGE ON SCHEMA booking_api FROM medbook_maintenance;
