-- Fewer statements and trigger calls per booking and cancellation, the same
-- rules for every writer. A booking ran about twenty statements (each with
-- its executor start-up) and nine PL/pgSQL trigger calls; the profile of one
-- booking is spread over exactly that set-up work (docs/PERFORMANCE.md).
--
-- 1. One BEFORE trigger per table and write. availability_slots_bump_version
--    folds into availability_slots_row_rules, and appointments_bump_version
--    and appointments_guard_change into appointments_row_rules (which now also
--    fires on DELETE, to refuse it). The order inside is the order the
--    triggers ran in (name order): version, guard, rules, so every write is
--    refused with the same error as before.
-- 2. The event id in fewer queries. booking_assign_event_id() ran three
--    statements per event (type, max(id) over the transaction's id range,
--    NOTIFY switch); the first event of a transaction now runs them as one,
--    and later ones continue from a transaction-local setting,
--    booking.event_seq, which PostgreSQL rolls back with the
--    (sub)transaction that wrote the events.
-- 3. events_payload_object moves from a CHECK constraint into that trigger,
--    as the other row rules did in 0015 (PostgreSQL parses a CHECK again for
--    every statement): same name, same SQLSTATE.
-- 4. booking_record_appointment_event() reads rescheduled_to as a column. It
--    went through to_jsonb(NEW) of the whole row on every update, so that 0011
--    could run before 0009 added the column; 0017 runs after both.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

SET LOCAL ROLE medbook_owner;

CREATE OR REPLACE FUNCTION booking.booking_check_slot_row() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Every update of a slot makes a new version, whatever path made it (a
   function, or a DBA's UPDATE), so an ETag never outlives a change. Then the
   row rules of availability_slots (CHECK constraints until 0015; see there),
   tried in the constraints' name order, false (not NULL) breaks one:
     max_length          a slot lasts at most 24 hours
     status_check        available or booked
     valid_range         it ends after it starts
     version_positive    the version is positive */
DECLARE
    v_rule text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        NEW.version := OLD.version + 1;
    END IF;
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
/* Everything checked before an appointment row is written, in one trigger.

   Versions: every update makes a new version, whatever path made it, so an
   ETag never outlives a change.

   The guard (on UPDATE and DELETE): appointments move one way only: booked ->
   cancelled, completed or no_show, each final, and keep their facts. Besides
   that move, two changes are allowed: slot_id -> NULL when a cancelled
   appointment's slot is deleted (ON DELETE SET NULL), and rescheduled_to NULL
   -> the successor, once, on a cancelled appointment (reschedule_appointment()
   sets it in the transaction that cancels it; appointments_reschedule_link
   checks the pair at commit). Nothing deletes an appointment.

   The row rules (CHECK constraints until 0015; see there for why). A rule is
   broken when it is false, not when it is NULL, as for a CHECK; rules are
   tried in the order PostgreSQL tried the constraints (by name), so a row that
   breaks two reports the same one as before.
     attendance_fields          completed / no_show have both attendance fields, booked / cancelled neither
     attended_after_start       attendance is recorded at or after the start
     booked_has_slot            only a cancelled appointment may lose its slot
     cancellation_fields        a cancelled one has cancelled_at and _by; any other has no cancellation field
     reason_length              the cancellation reason has at most 1000 characters
     reschedule_not_self        an appointment is not its own predecessor or successor
     rescheduled_to_cancelled   only a cancelled appointment has a successor
     status_check               booked, cancelled, completed or no_show
     valid_range                it ends after it starts
     version_positive           the version is positive */
DECLARE
    v_rule text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'appointment % cannot be deleted', OLD.id
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'Cancel it with cancel_appointment(); appointments are kept for history.';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        NEW.version := OLD.version + 1;
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
    END IF;
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

DROP TRIGGER availability_slots_bump_version ON booking.availability_slots;
DROP TRIGGER appointments_bump_version ON booking.appointments;
DROP TRIGGER appointments_guard_change ON booking.appointments;
DROP TRIGGER appointments_row_rules ON booking.appointments;
CREATE TRIGGER appointments_row_rules
    BEFORE INSERT OR UPDATE OR DELETE ON booking.appointments
    FOR EACH ROW EXECUTE FUNCTION booking.booking_check_appointment_row();
DROP FUNCTION booking.booking_guard_appointment_change();

CREATE OR REPLACE FUNCTION booking.booking_assign_event_id() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Gives every event its id: the inserting transaction's xid8 * 2^20 + the
   number of events the transaction wrote before it. A reader that only
   returns ids below (oldest running xid) * 2^20 therefore never returns an
   id above one that can still commit (DESIGN.md section 4).

   The first event of a transaction counts the transaction's events with
   max(id), in the one statement that also checks its type and reads the
   NOTIFY switch; every later one continues from the transaction-local
   setting booking.event_seq (the last id given), which PostgreSQL resets at
   the end of the transaction and rolls back with a subtransaction that is
   rolled back, together with the events it wrote. A value outside the
   transaction's range is not trusted (counted again); a session that sets a
   value inside it by hand can only make its own next insert fail on
   events_pkey.

   Checks the type against event_types (a lookup, not a foreign key: a
   key-share lock on one hot event_types row per booking would be contention
   for nothing), and the payload rule events_payload_object (a CHECK
   constraint until 0017, moved here as the row rules of 0015 were). The
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
    v_xid    bigint := pg_current_xact_id()::text::bigint;
    v_base   bigint;
    v_last   text := current_setting('booking.event_seq', true);
    v_known  boolean;
    v_notify boolean := false;
BEGIN
    IF v_xid >= 8796093022208 THEN  -- 2^43: the id would not fit a bigint
        RAISE EXCEPTION 'transaction id % is too large for event ids', v_xid
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    v_base := v_xid * 1048576;
    IF v_last ~ '^[0-9]{1,19}$' AND v_last::numeric >= v_base AND v_last::numeric < v_base + 1048576 THEN
        NEW.id := v_last::bigint + 1;
        v_known := EXISTS (SELECT 1 FROM event_types WHERE name = NEW.type);
    ELSE
        SELECT coalesce((SELECT max(e.id) + 1 FROM events e WHERE e.id >= v_base AND e.id < v_base + 1048576),
                        v_base),
               EXISTS (SELECT 1 FROM event_types WHERE name = NEW.type),
               coalesce((SELECT s.notify_on_commit FROM event_log_settings s), false)
          INTO NEW.id, v_known, v_notify;
    END IF;
    IF NOT v_known THEN
        RAISE EXCEPTION 'unknown event type %', NEW.type
            USING ERRCODE = 'MBE01', HINT = 'Add the type to booking.event_types in a migration.';
    END IF;
    IF NEW.id >= v_base + 1048576 THEN
        RAISE EXCEPTION 'more than 1048576 events in one transaction'
            USING ERRCODE = 'program_limit_exceeded', HINT = 'Split the change into several transactions.';
    END IF;
    IF (jsonb_typeof(NEW.payload) = 'object') IS FALSE THEN
        RAISE EXCEPTION 'new row for relation "events" violates check constraint "%"', 'events_payload_object'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'events_payload_object', SCHEMA = 'booking',
                  TABLE = 'events', DETAIL = format('type=%s', NEW.type);
    END IF;
    v_last := set_config('booking.event_seq', NEW.id::text, true);
    IF v_notify AND NEW.id = v_base AND pg_try_advisory_xact_lock(1296188758, 0) THEN  -- 'MBEV': the event log's notifier
        PERFORM pg_notify('booking_events', NEW.id::text);
    END IF;
    RETURN NEW;
END
$$;

ALTER TABLE booking.events DROP CONSTRAINT events_payload_object;

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
   deleted) is no event of its own. */
DECLARE
    v_type     text;
    v_payload  jsonb;
    v_base     bigint;
    v_event_id bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_type := 'appointment.booked';
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        v_type := CASE WHEN NEW.status = 'cancelled' AND NEW.rescheduled_to IS NOT NULL
                       THEN 'appointment.rescheduled' ELSE 'appointment.' || NEW.status END;
    ELSIF NEW.status = 'cancelled' AND NEW.rescheduled_to IS NOT NULL AND OLD.rescheduled_to IS NULL THEN
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
