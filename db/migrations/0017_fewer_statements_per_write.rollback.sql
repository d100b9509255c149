-- squawk-ignore-file constraint-missing-not-valid
-- Back to 0016: one trigger per concern again (version, guard, row rules),
-- the event id counted with max(id), events_payload_object a CHECK
-- constraint, and the appointment event reading rescheduled_to through jsonb.
-- The CHECK is validated here: a rollback must leave the schema as 0016 had
-- it, and rollback runs each file in one transaction, so the scan of events
-- happens while the ADD's ACCESS EXCLUSIVE lock is held (squawk's
-- constraint-missing-not-valid). Run it in a quiet window on a large database.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '10min';

SET LOCAL ROLE medbook_owner;

CREATE OR REPLACE FUNCTION booking.booking_check_slot_row() RETURNS trigger
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

CREATE OR REPLACE FUNCTION booking.booking_check_appointment_row() RETURNS trigger
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

CREATE OR REPLACE FUNCTION booking.booking_guard_appointment_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Appointments move one way only: booked -> cancelled, completed or no_show,
   each final, and keep their facts. Besides that move, two changes are
   allowed: slot_id -> NULL when a cancelled appointment's slot is deleted (ON
   DELETE SET NULL), and rescheduled_to NULL -> the successor, once, on a
   cancelled appointment (reschedule_appointment() sets it in the transaction
   that cancels it; appointments_reschedule_link checks the pair at commit). */
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
       OR NEW.rescheduled_from IS DISTINCT FROM OLD.rescheduled_from
       OR (NEW.slot_id IS DISTINCT FROM OLD.slot_id AND NOT (NEW.slot_id IS NULL AND OLD.status = 'cancelled'))
       OR (NEW.rescheduled_to IS DISTINCT FROM OLD.rescheduled_to
           AND NOT (OLD.rescheduled_to IS NULL AND NEW.status = 'cancelled'))
    THEN
        RAISE EXCEPTION 'appointment % cannot be changed except by cancelling it or recording attendance', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.status <> 'booked' AND (NEW.status <> OLD.status
            OR NEW.cancelled_at IS DISTINCT FROM OLD.cancelled_at
            OR NEW.cancelled_by IS DISTINCT FROM OLD.cancelled_by
            OR NEW.cancellation_reason IS DISTINCT FROM OLD.cancellation_reason
            OR NEW.attendance_recorded_at IS DISTINCT FROM OLD.attendance_recorded_at
            OR NEW.attendance_recorded_by IS DISTINCT FROM OLD.attendance_recorded_by) THEN
        RAISE EXCEPTION 'appointment % is % and cannot change', OLD.id, OLD.status
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

REVOKE ALL ON FUNCTION booking.booking_guard_appointment_change() FROM PUBLIC;

DROP TRIGGER appointments_row_rules ON booking.appointments;
CREATE TRIGGER appointments_bump_version
    BEFORE UPDATE ON booking.appointments
    FOR EACH ROW EXECUTE FUNCTION booking.booking_bump_version();
CREATE TRIGGER appointments_guard_change
    BEFORE UPDATE OR DELETE ON booking.appointments
    FOR EACH ROW EXECUTE FUNCTION booking.booking_guard_appointment_change();
CREATE TRIGGER appointments_row_rules
    BEFORE INSERT OR UPDATE ON booking.appointments
    FOR EACH ROW EXECUTE FUNCTION booking.booking_check_appointment_row();
CREATE TRIGGER availability_slots_bump_version
    BEFORE UPDATE ON booking.availability_slots
    FOR EACH ROW EXECUTE FUNCTION booking.booking_bump_version();

CREATE OR REPLACE FUNCTION booking.booking_assign_event_id() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Gives every event its id: the inserting transaction's xid8 * 2^20 + the
   number of events the transaction wrote before it. A reader that only
   returns ids below (oldest running xid) * 2^20 therefore never returns an
   id above one that can still commit (DESIGN.md section 4). Checks the type
   against event_types (a lookup, not a foreign key: a key-share lock on one
   hot event_types row per booking would be contention for nothing). The
   first event of a transaction also queues NOTIFY booking_events with that
   event's id as payload, unless event_log_settings.notify_on_commit is off:
   PostgreSQL sends it when the transaction commits and drops it on rollback,
   so listeners wake on commit. Coalesced: only while no other notifying
   transaction is in flight (a try-lock, held to the end of the transaction,
   that never waits). A notifying transaction holds PostgreSQL's one notify
   lock from pre-commit until its commit is durable, so notifying from every
   transaction would commit them one at a time; with one notifier in flight
   the others commit together, and the notifier's commit wakes listeners for
   them too, or the next notifier's, or the relay's (notify_booking_events())
   for the last ones of a burst (DESIGN.md section 4). */
DECLARE
    v_xid  bigint := pg_current_xact_id()::text::bigint;
    v_base bigint;
    v_last bigint;
BEGIN
    IF v_xid >= 8796093022208 THEN  -- 2^43: the id would not fit a bigint
        RAISE EXCEPTION 'transaction id % is too large for event ids', v_xid
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM event_types WHERE name = NEW.type) THEN
        RAISE EXCEPTION 'unknown event type %', NEW.type
            USING ERRCODE = 'MBE01', HINT = 'Add the type to booking.event_types in a migration.';
    END IF;
    v_base := v_xid * 1048576;
    SELECT max(id) INTO v_last FROM events WHERE id >= v_base AND id < v_base + 1048576;
    NEW.id := coalesce(v_last + 1, v_base);
    IF NEW.id >= v_base + 1048576 THEN
        RAISE EXCEPTION 'more than 1048576 events in one transaction'
            USING ERRCODE = 'program_limit_exceeded', HINT = 'Split the change into several transactions.';
    END IF;
    IF NEW.id = v_base AND (SELECT s.notify_on_commit FROM event_log_settings s)
            AND pg_try_advisory_xact_lock(1296188758, 0) THEN  -- 'MBEV': the event log's notifier
        PERFORM pg_notify('booking_events', NEW.id::text);
    END IF;
    RETURN NEW;
END
$$;

ALTER TABLE booking.events
    ADD CONSTRAINT events_payload_object CHECK (jsonb_typeof(payload) = 'object') NOT VALID;
ALTER TABLE booking.events VALIDATE CONSTRAINT events_payload_object;

CREATE OR REPLACE FUNCTION booking.booking_record_appointment_event() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* The appointment's event, derived from the row change, whoever made it:
     INSERT                                   appointment.booked
     status booked -> cancelled               appointment.cancelled
     status -> completed / no_show / ...      appointment.<status>
     rescheduled_to set on a cancelled one    appointment.rescheduled: rewrites this
                                              transaction's appointment.cancelled of it
                                              (a reschedule cancels, books, then links),
                                              or appends one when the cancellation
                                              committed earlier.
   Any other update (slot_id cleared when a cancelled appointment's slot is
   deleted) is no event of its own. rescheduled_to is read through jsonb so
   the function works with and without the lifecycle columns of 0009. */
DECLARE
    v_type     text;
    v_new      jsonb;
    v_payload  jsonb;
    v_base     bigint;
    v_event_id bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_type := 'appointment.booked';
    ELSE
        v_new := to_jsonb(NEW);
    END IF;
    IF v_type IS NOT NULL THEN
        NULL;
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        v_type := CASE WHEN NEW.status = 'cancelled' AND v_new ->> 'rescheduled_to' IS NOT NULL
                       THEN 'appointment.rescheduled' ELSE 'appointment.' || NEW.status END;
    ELSIF NEW.status = 'cancelled' AND v_new ->> 'rescheduled_to' IS NOT NULL
          AND to_jsonb(OLD) ->> 'rescheduled_to' IS NULL THEN
        v_payload := booking_appointment_json(NEW);
        v_base := pg_current_xact_id()::text::bigint * 1048576;
        SELECT id INTO v_event_id FROM events
         WHERE id >= v_base AND id < v_base + 1048576
           AND appointment_id = NEW.id AND type = 'appointment.cancelled'
         ORDER BY id DESC LIMIT 1;
        IF FOUND THEN
            UPDATE events SET type = 'appointment.rescheduled', payload = v_payload WHERE id = v_event_id;
            RETURN NULL;
        END IF;
        v_type := 'appointment.rescheduled';
    ELSE
        RETURN NULL;
    END IF;
    INSERT INTO events (type, occurred_at, practitioner_id, patient_id, slot_id, appointment_id, payload)
    VALUES (v_type, booking_api.booking_now(), NEW.practitioner_id, NEW.patient_id, NEW.slot_id, NEW.id,
            coalesce(v_payload, booking_appointment_json(NEW)));
    RETURN NULL;
END
$$;

RESET ROLE;
