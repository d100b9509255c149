-- Booking tables, beside Medbook's users and practitioners.
--
-- The invariants live here as constraints so that no code path (the API, a DBA
-- in psql, another service) can store a double booking or lose history:
--   * a slot ends after it starts and lasts at most 24 hours (CHECK);
--   * a practitioner's slots never overlap (EXCLUDE on a tstzrange, btree_gist);
--   * at most one booked appointment per slot (partial UNIQUE index);
--   * a slot is 'booked' exactly when it has a booked appointment (deferred
--     constraint triggers, checked at commit);
--   * appointments and their history are never deleted (FKs RESTRICT, triggers
--     refuse DELETE, UPDATE of history, and TRUNCATE).

CREATE EXTENSION IF NOT EXISTS btree_gist;

SET LOCAL ROLE medbook_owner;

CREATE TABLE time_zones (
    name text PRIMARY KEY
);
COMMENT ON TABLE time_zones IS
    'IANA time zone names this server knows, copied from pg_timezone_names; validates practitioner and query time zones with an index lookup.';
INSERT INTO time_zones (name) SELECT name FROM pg_timezone_names ON CONFLICT DO NOTHING;

CREATE TABLE patients (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT patients_user_id_key UNIQUE (user_id)
);
COMMENT ON TABLE patients IS
    'Patient profile of a Medbook user, one per user (like practitioners). Only patients book.';

CREATE TABLE practitioner_booking_settings (
    practitioner_id     bigint PRIMARY KEY REFERENCES practitioners (id) ON DELETE RESTRICT,
    time_zone           text NOT NULL DEFAULT 'UTC' REFERENCES time_zones (name),
    cancellation_notice interval NOT NULL DEFAULT interval '24 hours',
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT practitioner_booking_settings_notice_range
        CHECK (cancellation_notice >= interval '0' AND cancellation_notice <= interval '30 days')
);
COMMENT ON TABLE practitioner_booking_settings IS
    'Per-practitioner booking settings. A practitioner without a row uses the defaults (UTC, 24 hours).';
COMMENT ON COLUMN practitioner_booking_settings.time_zone IS
    'IANA zone in which the practitioner''s local dates are read (the date filter of available slots).';
COMMENT ON COLUMN practitioner_booking_settings.cancellation_notice IS
    'How long before a slot starts a patient may still cancel; the practitioner may cancel until the start.';

CREATE TABLE availability_slots (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    practitioner_id bigint NOT NULL REFERENCES practitioners (id) ON DELETE RESTRICT,
    start_time      timestamptz NOT NULL,
    end_time        timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'available',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT availability_slots_status_check CHECK (status IN ('available', 'booked')),
    CONSTRAINT availability_slots_valid_range CHECK (end_time > start_time),
    CONSTRAINT availability_slots_max_length CHECK (end_time - start_time <= interval '24 hours'),
    CONSTRAINT availability_slots_no_overlap
        EXCLUDE USING gist (practitioner_id WITH =, tstzrange(start_time, end_time) WITH &&)
);
COMMENT ON TABLE availability_slots IS
    'Time a practitioner offers. status is ''booked'' exactly when one booked appointment holds the slot.';
COMMENT ON COLUMN availability_slots.status IS
    'available | booked; changed only together with the slot''s appointment, in the same transaction.';

-- Serves "available slots of one practitioner between two instants".
CREATE INDEX availability_slots_available_by_start
    ON availability_slots (practitioner_id, start_time)
    WHERE status = 'available';

CREATE TABLE appointments (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slot_id             bigint REFERENCES availability_slots (id) ON DELETE SET NULL,
    patient_id          bigint NOT NULL REFERENCES patients (id) ON DELETE RESTRICT,
    practitioner_id     bigint NOT NULL REFERENCES practitioners (id) ON DELETE RESTRICT,
    status              text NOT NULL DEFAULT 'booked',
    start_time          timestamptz NOT NULL,
    end_time            timestamptz NOT NULL,
    booked_at           timestamptz NOT NULL,
    cancelled_at        timestamptz,
    cancelled_by        bigint REFERENCES users (id) ON DELETE RESTRICT,
    cancellation_reason text,
    CONSTRAINT appointments_status_check CHECK (status IN ('booked', 'cancelled')),
    CONSTRAINT appointments_valid_range CHECK (end_time > start_time),
    CONSTRAINT appointments_cancellation_fields CHECK (
        (status = 'booked' AND cancelled_at IS NULL AND cancelled_by IS NULL
            AND cancellation_reason IS NULL)
        OR (status = 'cancelled' AND cancelled_at IS NOT NULL AND cancelled_by IS NOT NULL)
    ),
    CONSTRAINT appointments_booked_has_slot CHECK (status = 'cancelled' OR slot_id IS NOT NULL),
    CONSTRAINT appointments_reason_length CHECK (char_length(cancellation_reason) <= 1000)
);
COMMENT ON TABLE appointments IS
    'A patient''s booking of a slot. Never deleted: a cancellation changes status and keeps the row.';
COMMENT ON COLUMN appointments.slot_id IS
    'The booked slot; set to NULL only when the slot of a cancelled appointment is deleted.';
COMMENT ON COLUMN appointments.start_time IS
    'Copy of the slot''s start when booked, so a cancelled appointment keeps its time after the slot changes or goes.';
COMMENT ON COLUMN appointments.cancelled_by IS 'users.id of whoever cancelled (patient or practitioner).';

-- The database's own guarantee against double booking.
CREATE UNIQUE INDEX appointments_one_booked_per_slot
    ON appointments (slot_id)
    WHERE status = 'booked';
CREATE INDEX appointments_upcoming_by_patient
    ON appointments (patient_id, start_time)
    WHERE status = 'booked';
CREATE INDEX appointments_by_practitioner ON appointments (practitioner_id, start_time);
CREATE INDEX appointments_by_slot ON appointments (slot_id);

CREATE TABLE appointment_history (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    appointment_id bigint NOT NULL REFERENCES appointments (id) ON DELETE RESTRICT,
    from_status    text,
    to_status      text NOT NULL,
    actor_user_id  bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    changed_at     timestamptz NOT NULL,
    CONSTRAINT appointment_history_status_check CHECK (
        (from_status IS NULL AND to_status = 'booked')
        OR (from_status = 'booked' AND to_status = 'cancelled')
    )
);
COMMENT ON TABLE appointment_history IS
    'One row per appointment state change (booking, cancellation), written by trigger; append-only.';
CREATE INDEX appointment_history_by_appointment ON appointment_history (appointment_id, id);

CREATE TABLE booking_clock (
    id        boolean PRIMARY KEY DEFAULT true,
    frozen_at timestamptz NOT NULL,
    CONSTRAINT booking_clock_single_row CHECK (id)
);
COMMENT ON TABLE booking_clock IS
    'Test clock. Empty in production, where booking_now() is now(); only medbook_owner can write it.';

-- Trigger functions: part of the schema's constraints, so they live with it.

CREATE FUNCTION booking_assert_slot_consistent() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
/* Deferred to commit: a slot is 'booked' exactly when it has a booked appointment.
   Fired for every slot row and appointment row a transaction wrote; an
   appointment that moved off a slot (ON DELETE SET NULL) checks both sides.
   Each check is one probe of appointments_one_booked_per_slot (which also
   rules out a second booked appointment), kept this small because it runs
   twice per booking and twice per cancellation.
   SECURITY DEFINER because before PostgreSQL 17 a deferred trigger runs as the
   role current at COMMIT (medbook_api, which cannot read the tables), not as
   the booking function that queued it. It only reads. */
DECLARE
    v_slot_id bigint;
BEGIN
    IF TG_TABLE_NAME = 'availability_slots' THEN
        IF (NEW.status = 'booked') IS DISTINCT FROM EXISTS (
                SELECT 1 FROM appointments a WHERE a.slot_id = NEW.id AND a.status = 'booked') THEN
            RAISE EXCEPTION 'slot % has status % and a booked appointment count that disagrees', NEW.id, NEW.status
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'availability_slots_booking_consistency',
                      HINT = 'Book and cancel through book_slot() and cancel_appointment().';
        END IF;
        RETURN NULL;
    END IF;

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

CREATE CONSTRAINT TRIGGER availability_slots_booking_consistency
    AFTER INSERT OR UPDATE OF status ON availability_slots
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION booking_assert_slot_consistent();

CREATE CONSTRAINT TRIGGER appointments_booking_consistency
    AFTER INSERT OR UPDATE OF status, slot_id ON appointments
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION booking_assert_slot_consistent();

CREATE FUNCTION booking_guard_appointment_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
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

CREATE TRIGGER appointments_guard_change
    BEFORE UPDATE OR DELETE ON appointments
    FOR EACH ROW EXECUTE FUNCTION booking_guard_appointment_change();

CREATE FUNCTION booking_record_history() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
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

CREATE TRIGGER appointments_record_history
    AFTER INSERT OR UPDATE OF status ON appointments
    FOR EACH ROW EXECUTE FUNCTION booking_record_history();

CREATE FUNCTION booking_refuse_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
/* Append-only tables refuse UPDATE, DELETE and TRUNCATE. */
BEGIN
    RAISE EXCEPTION '% on % is not allowed: the table keeps booking history', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE TRIGGER appointment_history_append_only
    BEFORE UPDATE OR DELETE ON appointment_history
    FOR EACH ROW EXECUTE FUNCTION booking_refuse_change();
CREATE TRIGGER appointment_history_no_truncate
    BEFORE TRUNCATE ON appointment_history
    FOR EACH STATEMENT EXECUTE FUNCTION booking_refuse_change();
CREATE TRIGGER appointments_no_truncate
    BEFORE TRUNCATE ON appointments
    FOR EACH STATEMENT EXECUTE FUNCTION booking_refuse_change();

REVOKE ALL ON time_zones, patients, practitioner_booking_settings, availability_slots,
    appointments, appointment_history, booking_clock FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION booking_assert_slot_consistent(), booking_guard_appointment_change(),
    booking_record_history(), booking_refuse_change() FROM PUBLIC;

RESET ROLE;
