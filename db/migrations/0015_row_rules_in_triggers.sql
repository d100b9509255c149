-- The row rules of the three tables every booking and cancellation writes
-- (appointments, availability_slots, appointment_history) move from CHECK
-- constraints into one BEFORE trigger per table: the same rules, under the same
-- names, with the same SQLSTATE, for every writer.
--
-- Why: PostgreSQL keeps a CHECK constraint as the text of its expression tree
-- and, for every statement that writes the table, parses that text and plans
-- the expression again (ExecRelCheck: stringToNode, then ExecPrepareExpr); a
-- prepared statement or a PL/pgSQL function does not keep the result. The
-- nine row checks of appointments (ten with the version's, 0012) are 8.5 kB
-- of such text. Measured (docs/PERFORMANCE.md, "What a booking costs in the
-- database"), PostgreSQL 18: 20,000 one-row INSERTs into a copy of
-- appointments take 43-52 us each with its nine CHECKs, 5 us with none, and
-- 8-12 us with the same nine rules in one PL/pgSQL BEFORE trigger, whose
-- expressions PL/pgSQL plans once per session. A booking and a cancellation
-- each write one row of all three tables.
--
-- What stays the same: each rule still refuses a bad row from any writer (the
-- API, psql, COPY, another service), raises 23514 check_violation and names
-- the constraint it stands for (diag constraint_name: appointments_status_check
-- and so on), and the rules are evaluated after the other BEFORE triggers of
-- the table, as CHECK constraints were (the triggers are named to fire last:
-- appointments_row_rules after appointments_bump_version and
-- appointments_guard_change,
-- availability_slots_row_rules after availability_slots_bump_version, so the
-- bumped version is what version_positive checks). What changes for a DBA: the
-- rules are read in pg_trigger and the functions below, not in pg_constraint,
-- and like the foreign keys and the commit-time checks they do not run where
-- triggers are switched off (ALTER TABLE ... DISABLE TRIGGER by the owner,
-- session_replication_role = replica by a superuser).
--
-- The rows already stored satisfied the constraints dropped here, which state
-- the same rules. Creating a trigger and dropping a CHECK take a short lock on
-- booking's own tables only (never Medbook's); the lock_timeout bounds the wait.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
SET LOCAL ROLE medbook_owner;

CREATE FUNCTION booking.booking_check_appointment_row() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* The row rules of appointments (were CHECK constraints until 0015; see there
   for why). A rule is broken when it is false, not when it is NULL, as for a
   CHECK; rules are tried in the order PostgreSQL tried the constraints (by
   name), so a row that breaks two reports the same one as before.
     attendance_fields          completed / no_show have both attendance fields, booked / cancelled neither
     attended_after_start       attendance is recorded at or after the start
     booked_has_slot            only a cancelled appointment may lose its slot
     cancellation_fields        a cancelled one has cancelled_at and _by; any other has no cancellation field
     reason_length              the cancellation reason has at most 1000 characters
     reschedule_not_self        an appointment is not its own predecessor or successor
     rescheduled_to_cancelled   only a cancelled appointment has a successor
     status_check               booked, cancelled, completed or no_show
     valid_range                it ends after it starts
     version_positive           the version (bumped by appointments_bump_version, 0012) is positive */
DECLARE
    v_rule text;
BEGIN
    v_rule := CASE
        WHEN ((NEW.status = ANY (ARRAY['completed', 'no_show']) AND NEW.attendance_recorded_at IS NOT NULL
                  AND NEW.attendance_recorded_by IS NOT NULL)
              OR (NEW.status = ANY (ARRAY['booked', 'cancelled']) AND NEW.attendance_recorded_at IS NULL
                  AND NEW.attendance_recorded_by IS NULL)) IS FALSE
            THEN 'appointments_attendance_fields'
        WHEN (NEW.attendance_recorded_at >= NEW.start_time) IS FALSE THEN 'appointments_attended_after_start'
        WHEN (NEW.status = 'cancelled' OR NEW.slot_id IS NOT NULL) IS FALSE THEN 'appointments_booked_has_slot'
        WHEN ((NEW.status <> 'cancelled' AND NEW.cancelled_at IS NULL AND NEW.cancelled_by IS NULL
                  AND NEW.cancellation_reason IS NULL)
              OR (NEW.status = 'cancelled' AND NEW.cancelled_at IS NOT NULL AND NEW.cancelled_by IS NOT NULL)) IS FALSE
            THEN 'appointments_cancellation_fields'
        WHEN (char_length(NEW.cancellation_reason) <= 1000) IS FALSE THEN 'appointments_reason_length'
        WHEN (NEW.rescheduled_from <> NEW.id AND NEW.rescheduled_to <> NEW.id) IS FALSE
            THEN 'appointments_reschedule_not_self'
        WHEN (NEW.rescheduled_to IS NULL OR NEW.status = 'cancelled') IS FALSE
            THEN 'appointments_rescheduled_to_cancelled'
        WHEN (NEW.status = ANY (ARRAY['booked', 'cancelled', 'completed', 'no_show'])) IS FALSE
            THEN 'appointments_status_check'
        WHEN (NEW.end_time > NEW.start_time) IS FALSE THEN 'appointments_valid_range'
        WHEN (NEW.version > 0) IS FALSE THEN 'appointments_version_positive'
    END;
    IF v_rule IS NOT NULL THEN
        RAISE EXCEPTION 'new row for relation "appointments" violates check constraint "%"', v_rule
            USING ERRCODE = 'check_violation', CONSTRAINT = v_rule, SCHEMA = 'booking', TABLE = 'appointments',
                  DETAIL = format('appointment_id=%s status=%s', NEW.id, NEW.status);
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION booking.booking_check_slot_row() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* The row rules of availability_slots (were CHECK constraints until 0015; see
   there for why), tried in the constraints' name order, false (not NULL)
   breaks one:
     max_length          a slot lasts at most 24 hours
     status_check        available or booked
     valid_range         it ends after it starts
     version_positive    the version (bumped by availability_slots_bump_version) is positive */
DECLARE
    v_rule text;
BEGIN
    v_rule := CASE
        WHEN (NEW.end_time - NEW.start_time <= interval '24 hours') IS FALSE THEN 'availability_slots_max_length'
        WHEN (NEW.status = ANY (ARRAY['available', 'booked'])) IS FALSE THEN 'availability_slots_status_check'
        WHEN (NEW.end_time > NEW.start_time) IS FALSE THEN 'availability_slots_valid_range'
        WHEN (NEW.version > 0) IS FALSE THEN 'availability_slots_version_positive'
    END;
    IF v_rule IS NOT NULL THEN
        RAISE EXCEPTION 'new row for relation "availability_slots" violates check constraint "%"', v_rule
            USING ERRCODE = 'check_violation', CONSTRAINT = v_rule, SCHEMA = 'booking',
                  TABLE = 'availability_slots', DETAIL = format('slot_id=%s', NEW.id);
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION booking.booking_check_history_row() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* The row rule of appointment_history (a CHECK constraint until 0015; see
   there for why): a history row records a booking (NULL -> booked) or the one
   move a booked appointment makes (booked -> cancelled, completed or no_show). */
BEGIN
    IF ((NEW.from_status IS NULL AND NEW.to_status = 'booked')
        OR (NEW.from_status = 'booked' AND NEW.to_status = ANY (ARRAY['cancelled', 'completed', 'no_show'])))
       IS FALSE THEN
        RAISE EXCEPTION 'new row for relation "appointment_history" violates check constraint "%"',
                'appointment_history_status_check'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'appointment_history_status_check',
                  SCHEMA = 'booking', TABLE = 'appointment_history',
                  DETAIL = format('appointment_id=%s from_status=%s to_status=%s',
                                  NEW.appointment_id, NEW.from_status, NEW.to_status);
    END IF;
    RETURN NEW;
END
$$;

REVOKE ALL ON FUNCTION booking.booking_check_appointment_row(), booking.booking_check_slot_row(),
    booking.booking_check_history_row() FROM PUBLIC;

CREATE TRIGGER appointments_row_rules
    BEFORE INSERT OR UPDATE ON booking.appointments
    FOR EACH ROW EXECUTE FUNCTION booking.booking_check_appointment_row();
CREATE TRIGGER availability_slots_row_rules
    BEFORE INSERT OR UPDATE ON booking.availability_slots
    FOR EACH ROW EXECUTE FUNCTION booking.booking_check_slot_row();
CREATE TRIGGER appointment_history_row_rules
    BEFORE INSERT ON booking.appointment_history
    FOR EACH ROW EXECUTE FUNCTION booking.booking_check_history_row();

ALTER TABLE booking.appointments
    DROP CONSTRAINT appointments_attendance_fields,
    DROP CONSTRAINT appointments_attended_after_start,
    DROP CONSTRAINT appointments_booked_has_slot,
    DROP CONSTRAINT appointments_cancellation_fields,
    DROP CONSTRAINT appointments_reason_length,
    DROP CONSTRAINT appointments_reschedule_not_self,
    DROP CONSTRAINT appointments_rescheduled_to_cancelled,
    DROP CONSTRAINT appointments_status_check,
    DROP CONSTRAINT appointments_valid_range,
    DROP CONSTRAINT appointments_version_positive;
ALTER TABLE booking.availability_slots
    DROP CONSTRAINT availability_slots_max_length,
    DROP CONSTRAINT availability_slots_status_check,
    DROP CONSTRAINT availability_slots_valid_range,
    DROP CONSTRAINT availability_slots_version_positive;
ALTER TABLE booking.appointment_history
    DROP CONSTRAINT appointment_history_status_check;

RESET ROLE;
