/* Why: the heart of the product, and the one place a double booking could be
   born. The slot is claimed by booking_claim_slot() (070), shared with
   rescheduling: one conditional UPDATE under the slot's row lock, so of any
   number of simultaneous bookings exactly one wins and every other gets MBS01
   slot_unavailable. Only the holder of the claim inserts the appointment, so
   the unique key appointments_slot_holder_key (one holder per slot) is a
   backstop that never fires in normal operation: no unique violation, no
   deadlock (one row lock, taken after the practitioner's shared advisory
   lock), no serialization failure at READ COMMITTED. */
CREATE OR REPLACE FUNCTION booking_api.book_slot(
    p_actor_user_id bigint,
    p_slot_id       bigint
)
RETURNS booking_api.appointment
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_now         timestamptz := booking_api.booking_now();
    v_patient_id  bigint;
    v_practitioner_id bigint;
    v_slot        availability_slots;
    v_appointment appointments;
BEGIN
    -- A patient row implies its user (patients.user_id references users), so the
    -- user is looked up only when there is no patient: MB401 before MB403. The
    -- slot's practitioner is read in the same statement (each statement costs
    -- its executor start-up).
    SELECT p.id, (SELECT s.practitioner_id FROM availability_slots s WHERE s.id = p_slot_id)
      INTO v_patient_id, v_practitioner_id
      FROM patients p WHERE p.user_id = p_actor_user_id;
    IF NOT FOUND THEN
        PERFORM booking_require_user(p_actor_user_id);
        RAISE EXCEPTION 'only patients can book'
            USING ERRCODE = 'MB403', DETAIL = format('user_id=%s', p_actor_user_id),
                  HINT = 'Sign in as the patient the appointment is for.';
    END IF;

    -- Before the claim: see 006_booking_lock_practitioner.sql (a slot never changes practitioner).
    IF v_practitioner_id IS NOT NULL THEN
        PERFORM booking_lock_practitioner(v_practitioner_id, false);
    END IF;

    v_slot := booking_claim_slot(p_slot_id, v_now);

    INSERT INTO appointments (slot_id, patient_id, practitioner_id, status, start_time, end_time, booked_at)
    VALUES (v_slot.id, v_patient_id, v_slot.practitioner_id, 'booked', v_slot.start_time, v_slot.end_time, v_now)
    RETURNING * INTO v_appointment;
    RETURN appointment_out(v_appointment);
END
$$;

COMMENT ON FUNCTION booking_api.book_slot(bigint, bigint) IS
    'Books an available future slot for the acting patient; exactly one of any concurrent callers wins. '
    'Errors: MB401, MB403 (not a patient), MB404, MBS04 slot_in_past, MBS01 slot_unavailable.';
REVOKE ALL ON FUNCTION booking_api.book_slot(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.book_slot(bigint, bigint) TO medbook_api;
