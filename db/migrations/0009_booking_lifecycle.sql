-- The booking lifecycle for real clients: safe retries, rescheduling,
-- attendance, history and optimistic concurrency.
--
--   * appointments gain two final states, completed and no_show, recorded by the
--     practitioner at or after the start; the slot of an attended appointment
--     stays booked, so "a slot is booked exactly when one appointment holds it"
--     now counts booked, completed and no_show appointments as holders;
--   * a rescheduled appointment is cancelled with rescheduled_to pointing at its
--     successor, whose rescheduled_from points back (a deferred constraint
--     trigger checks the pair at commit, which also makes each link unique);
--   * slots and settings carry a version, bumped by trigger on every update,
--     which the API sends as a strong ETag and checks against If-Match;
--   * idempotency_keys stores the outcome of a request made with an
--     Idempotency-Key, written in the same transaction as the change itself.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'medbook_maintenance') THEN
        CREATE ROLE medbook_maintenance NOLOGIN;
    END IF;
END
$$;

SET LOCAL ROLE medbook_owner;

-- Appointments: attendance and rescheduling -----------------------------------

-- Constraints are added NOT VALID: every row written from now on is checked,
-- and 0010 validates the rows already there without blocking writes.
ALTER TABLE booking.appointments
    ADD COLUMN rescheduled_from       bigint,
    ADD COLUMN rescheduled_to         bigint,
    ADD COLUMN attendance_recorded_at timestamptz,
    ADD COLUMN attendance_recorded_by bigint,
    ADD CONSTRAINT appointments_rescheduled_from_fkey FOREIGN KEY (rescheduled_from)
        REFERENCES booking.appointments (id) ON DELETE RESTRICT NOT VALID,
    ADD CONSTRAINT appointments_rescheduled_to_fkey FOREIGN KEY (rescheduled_to)
        REFERENCES booking.appointments (id) ON DELETE RESTRICT NOT VALID,
    ADD CONSTRAINT appointments_attendance_recorded_by_fkey FOREIGN KEY (attendance_recorded_by)
        REFERENCES public.users (id) ON DELETE RESTRICT NOT VALID,
    DROP CONSTRAINT appointments_status_check,
    ADD CONSTRAINT appointments_status_check
        CHECK (status IN ('booked', 'cancelled', 'completed', 'no_show')) NOT VALID,
    DROP CONSTRAINT appointments_cancellation_fields,
    ADD CONSTRAINT appointments_cancellation_fields CHECK (
        (status <> 'cancelled' AND cancelled_at IS NULL AND cancelled_by IS NULL
            AND cancellation_reason IS NULL)
        OR (status = 'cancelled' AND cancelled_at IS NOT NULL AND cancelled_by IS NOT NULL)
    ) NOT VALID,
    ADD CONSTRAINT appointments_attendance_fields CHECK (
        (status IN ('completed', 'no_show') AND attendance_recorded_at IS NOT NULL
            AND attendance_recorded_by IS NOT NULL)
        OR (status IN ('booked', 'cancelled') AND attendance_recorded_at IS NULL
            AND attendance_recorded_by IS NULL)
    ) NOT VALID,
    ADD CONSTRAINT appointments_attended_after_start
        CHECK (attendance_recorded_at >= start_time) NOT VALID,
    ADD CONSTRAINT appointments_rescheduled_to_cancelled
        CHECK (rescheduled_to IS NULL OR status = 'cancelled') NOT VALID,
    ADD CONSTRAINT appointments_reschedule_not_self
        CHECK (rescheduled_from <> id AND rescheduled_to <> id) NOT VALID;

COMMENT ON COLUMN booking.appointments.status IS
    'booked | cancelled | completed | no_show. booked moves once, to one of the other three, which are final.';
COMMENT ON COLUMN booking.appointments.rescheduled_from IS
    'The cancelled appointment this one replaced (reschedule_appointment()); NULL when booked directly.';
COMMENT ON COLUMN booking.appointments.rescheduled_to IS
    'The appointment that replaced this cancelled one (reschedule_appointment()); NULL otherwise.';
COMMENT ON COLUMN booking.appointments.attendance_recorded_at IS
    'When the practitioner recorded completed or no_show; at or after the start.';
COMMENT ON COLUMN booking.appointments.attendance_recorded_by IS
    'users.id of the practitioner who recorded completed or no_show.';

-- One appointment holds a slot at a time: booked, or attended (completed or
-- no_show, whose slot stays booked). Replaces appointments_one_booked_per_slot,
-- whose predicate was booked only. Two index builds on booking's own
-- appointments table (never on Medbook's): each holds a SHARE lock, which
-- blocks writes to appointments, for the length of the build (measured in
-- docs/DESIGN.md section 5), and the migration's lock_timeout bounds the wait
-- for it. A CONCURRENTLY build would need a migration outside a transaction,
-- which migrate does not run.
-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX appointments_one_holder_per_slot
    ON booking.appointments (slot_id)
    WHERE status <> 'cancelled';
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX booking.appointments_one_booked_per_slot;
-- A patient's appointments of any status, by time: the past, cancelled and all lists.
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX appointments_by_patient ON booking.appointments (patient_id, start_time);

ALTER TABLE booking.appointment_history
    DROP CONSTRAINT appointment_history_status_check,
    ADD CONSTRAINT appointment_history_status_check CHECK (
        (from_status IS NULL AND to_status = 'booked')
        OR (from_status = 'booked' AND to_status IN ('cancelled', 'completed', 'no_show'))
    ) NOT VALID;
COMMENT ON TABLE booking.appointment_history IS
    'One row per appointment state change (booking, cancellation, attendance), written by trigger; append-only.';

-- Trigger functions, redefined for the new states ------------------------------

CREATE OR REPLACE FUNCTION booking.booking_assert_slot_status_consistent() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Deferred to commit, for every slot row a transaction inserted or whose
   status it changed: the slot is 'booked' exactly when an appointment holds
   it (booked, completed or no_show: an attended appointment keeps its slot).
   One probe of appointments_one_holder_per_slot.
   SECURITY DEFINER because before PostgreSQL 17 a deferred trigger runs as the
   role current at COMMIT (medbook_api, which cannot read the tables), not as
   the booking function that queued it. It only reads. */
BEGIN
    IF (NEW.status = 'booked') IS DISTINCT FROM EXISTS (
            SELECT 1 FROM appointments a WHERE a.slot_id = NEW.id AND a.status <> 'cancelled') THEN
        RAISE EXCEPTION 'slot % has status % and a holding appointment count that disagrees', NEW.id, NEW.status
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
   slot), each agree with the appointments holding them (booked, completed or
   no_show). One probe of appointments_one_holder_per_slot per slot, since this
   runs once per booking and once per cancellation. SECURITY DEFINER as
   booking_assert_slot_status_consistent(); it only reads. */
DECLARE
    v_slot_id bigint;
BEGIN
    FOREACH v_slot_id IN ARRAY ARRAY[CASE WHEN TG_OP = 'UPDATE' THEN OLD.slot_id END, NEW.slot_id] LOOP
        IF v_slot_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM availability_slots s
                 WHERE s.id = v_slot_id
                   AND (s.status = 'booked') IS DISTINCT FROM EXISTS (
                       SELECT 1 FROM appointments a WHERE a.slot_id = s.id AND a.status <> 'cancelled')) THEN
            RAISE EXCEPTION 'slot %''s status disagrees with its holding appointments', v_slot_id
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

CREATE OR REPLACE FUNCTION booking.booking_record_history() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Writes appointment_history for every state change, whatever path made it:
   the booking (actor: the patient's user; for a rescheduled appointment, whoever
   rescheduled it, i.e. who cancelled its predecessor in the same transaction),
   the cancellation (actor: cancelled_by) and the attendance (actor:
   attendance_recorded_by). */
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO appointment_history (appointment_id, from_status, to_status, actor_user_id, changed_at)
        SELECT NEW.id, NULL, NEW.status,
               coalesce((SELECT r.cancelled_by FROM appointments r WHERE r.id = NEW.rescheduled_from), p.user_id),
               NEW.booked_at
          FROM patients p WHERE p.id = NEW.patient_id;
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO appointment_history (appointment_id, from_status, to_status, actor_user_id, changed_at)
        VALUES (NEW.id, OLD.status, NEW.status,
                CASE WHEN NEW.status = 'cancelled' THEN NEW.cancelled_by ELSE NEW.attendance_recorded_by END,
                CASE WHEN NEW.status = 'cancelled' THEN NEW.cancelled_at ELSE NEW.attendance_recorded_at END);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION booking.booking_assert_reschedule_link() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Deferred to commit, and only queued for rows that carry a link: a
   rescheduled appointment and its successor point at each other, and belong to
   the same patient and practitioner. SECURITY DEFINER for the same reason as
   booking_assert_slot_consistent(); it only reads. */
BEGIN
    IF NEW.rescheduled_to IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM appointments n
             WHERE n.id = NEW.rescheduled_to AND n.rescheduled_from = NEW.id
               AND n.patient_id = NEW.patient_id AND n.practitioner_id = NEW.practitioner_id)
       OR NEW.rescheduled_from IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM appointments o
             WHERE o.id = NEW.rescheduled_from AND o.rescheduled_to = NEW.id
               AND o.patient_id = NEW.patient_id AND o.practitioner_id = NEW.practitioner_id) THEN
        RAISE EXCEPTION 'appointment %''s reschedule link is not matched by the other appointment', NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'appointments_reschedule_link',
                  HINT = 'Reschedule through reschedule_appointment().';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER appointments_reschedule_link
    AFTER INSERT OR UPDATE OF rescheduled_from, rescheduled_to ON booking.appointments
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.rescheduled_from IS NOT NULL OR NEW.rescheduled_to IS NOT NULL)
    EXECUTE FUNCTION booking.booking_assert_reschedule_link();

-- Versions for optimistic concurrency -------------------------------------------

ALTER TABLE booking.availability_slots
    ADD COLUMN version bigint NOT NULL DEFAULT 1,
    ADD CONSTRAINT availability_slots_version_positive CHECK (version > 0) NOT VALID;
COMMENT ON COLUMN booking.availability_slots.version IS
    'Bumped by trigger on every update (move, booking, cancellation); the strong ETag of the slot.';

ALTER TABLE booking.practitioner_booking_settings
    ADD COLUMN version bigint NOT NULL DEFAULT 1,
    ADD CONSTRAINT practitioner_booking_settings_version_positive CHECK (version > 0) NOT VALID;
COMMENT ON COLUMN booking.practitioner_booking_settings.version IS
    'Bumped by trigger on every update; the strong ETag of the settings (0 while a practitioner has no row).';

CREATE FUNCTION booking.booking_bump_version() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Every update of a versioned row makes a new version, whatever path made it
   (a function, or a DBA's UPDATE), so an ETag never outlives a change. */
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;

CREATE TRIGGER availability_slots_bump_version
    BEFORE UPDATE ON booking.availability_slots
    FOR EACH ROW EXECUTE FUNCTION booking.booking_bump_version();
CREATE TRIGGER practitioner_booking_settings_bump_version
    BEFORE UPDATE ON booking.practitioner_booking_settings
    FOR EACH ROW EXECUTE FUNCTION booking.booking_bump_version();

-- Idempotency keys -------------------------------------------------------------

CREATE TABLE booking.idempotency_keys (
    user_id         bigint NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
    idempotency_key text NOT NULL,
    operation       text NOT NULL,
    request_digest  bytea NOT NULL,
    result          jsonb,
    error_sqlstate  text,
    error_message   text,
    error_hint      text,
    error_detail    text,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (user_id, idempotency_key),
    CONSTRAINT idempotency_keys_key_format CHECK (idempotency_key ~ '^[ -~]{1,255}$'),
    CONSTRAINT idempotency_keys_one_outcome CHECK ((result IS NULL) <> (error_sqlstate IS NULL)),
    CONSTRAINT idempotency_keys_rule_errors_only CHECK (error_sqlstate ~ '^MB[0-9A-Z]{3}$'),
    CONSTRAINT idempotency_keys_expiry CHECK (expires_at > created_at)
);
COMMENT ON TABLE booking.idempotency_keys IS
    'Outcome of each request made with an Idempotency-Key, per user, written in the transaction that made the '
    'change; replayed to a retry with the same key. Kept 24 hours; purge_idempotency_keys() deletes expired rows.';
COMMENT ON COLUMN booking.idempotency_keys.idempotency_key IS
    'The client''s key: 1 to 255 printable ASCII characters, unique per user.';
COMMENT ON COLUMN booking.idempotency_keys.operation IS 'The booking function the request ran, e.g. book_slot.';
COMMENT ON COLUMN booking.idempotency_keys.request_digest IS
    'SHA-256 of the operation and its arguments; a retry must match it (else idempotency_key_reused).';
COMMENT ON COLUMN booking.idempotency_keys.result IS
    'The function''s result as JSON when it succeeded; NULL when it refused the request.';
COMMENT ON COLUMN booking.idempotency_keys.error_detail IS
    'The refusal''s DETAIL when it lists per-item errors (create_slots), which the API returns as "errors".';
COMMENT ON COLUMN booking.idempotency_keys.error_sqlstate IS
    'The booking rule''s SQLSTATE (class MB, a 4xx) when the function refused the request. Server errors are never stored.';
CREATE INDEX idempotency_keys_by_expiry ON booking.idempotency_keys (expires_at);

REVOKE ALL ON booking.idempotency_keys FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION booking.booking_assert_reschedule_link(), booking.booking_bump_version() FROM PUBLIC;

RESET ROLE;

-- medbook_maintenance runs the purge (booking_api.purge_idempotency_keys(),
-- db/functions/081): a cron login is granted it (docs/OPERATIONS.md).
GRANT USAGE ON SCHEMA booking_api TO medbook_maintenance;
