/* Why: cancelling frees the slot in the same transaction, so it can be booked
   again at once. The window (booking_require_cancellation_window(), 071): the
   patient may cancel until the practitioner's cancellation_notice before the
   start (default 24 hours), the practitioner until the start; at or after the
   deadline nobody can (MBA02). Only a booked appointment can be cancelled
   (MBA01 for a cancelled, completed or no-show one). Lock order is
   appointment row, then slot row; booking_api.book_slot() only ever claims an 'available'
   slot, which a slot with a booked appointment is not until this commits, so
   the two never wait on each other in a cycle. Two concurrent cancellations
   serialise on the appointment row; the second finds it cancelled (MBA01).

   Optimistic concurrency: with p_if_match (the versions the caller last saw,
   from the FHIR facade's ETag W/"n"), the cancellation is made only while the
   appointment's version is one of them, else MBP01 precondition_failed and
   nothing changes. The precondition is checked before the rules (a stale
   version of an appointment cancelled meanwhile is MBP01, not MBA01), and again
   in the UPDATE's WHERE, under the row lock, so of two callers holding one
   version exactly one succeeds. */
CREATE OR REPLACE FUNCTION booking_api.cancel_appointment(
    p_actor_user_id  bigint,
    p_appointment_id bigint,
    p_reason         text DEFAULT NULL,
    p_if_match       bigint[] DEFAULT NULL
)
RETURNS booking_api.appointment
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_now          timestamptz := booking_api.booking_now();
    v_appointment  appointments;
BEGIN
    v_appointment := booking_visible_appointment(p_actor_user_id, p_appointment_id);
    IF p_if_match IS NOT NULL THEN
        PERFORM booking_require_version(v_appointment.version, p_if_match, format('appointment_id=%s', p_appointment_id));
    END IF;
    PERFORM booking_lock_practitioner(v_appointment.practitioner_id, false);  -- see 006_booking_lock_practitioner.sql
    IF char_length(p_reason) > 1000 THEN
        RAISE EXCEPTION 'the cancellation reason is longer than 1000 characters'
            USING ERRCODE = 'MB400', HINT = 'Shorten the reason.';
    END IF;
    IF v_appointment.status <> 'booked' THEN
        RAISE EXCEPTION 'the appointment is not active'
            USING ERRCODE = 'MBA01', DETAIL = format('appointment_id=%s status=%s', p_appointment_id, v_appointment.status);
    END IF;

    PERFORM booking_require_cancellation_window(p_actor_user_id, v_appointment, v_now);

    UPDATE appointments
       SET status = 'cancelled', cancelled_at = v_now, cancelled_by = p_actor_user_id,
           cancellation_reason = nullif(btrim(p_reason), '')
     WHERE id = p_appointment_id AND status = 'booked'
       AND (p_if_match IS NULL OR version = ANY (p_if_match))
    RETURNING * INTO v_appointment;
    IF v_appointment.id IS NULL THEN
        -- Changed since it was read above: say which precondition it no longer meets.
        SELECT * INTO v_appointment FROM appointments WHERE id = p_appointment_id;
        PERFORM booking_require_version(v_appointment.version, p_if_match,
                                        format('appointment_id=%s', p_appointment_id));
        RAISE EXCEPTION 'the appointment is not active'
            USING ERRCODE = 'MBA01', DETAIL = format('appointment_id=%s', p_appointment_id);
    END IF;
    UPDATE availability_slots SET status = 'available', updated_at = v_now
     WHERE id = v_appointment.slot_id;
    RETURN appointment_out(v_appointment);
END
$$;

COMMENT ON FUNCTION booking_api.cancel_appointment(bigint, bigint, text, bigint[]) IS
    'Cancels a booked appointment and frees its slot. Patient: until the cancellation notice before the start; '
    'practitioner: until the start. With p_if_match, only while the appointment''s version is one of those given. '
    'Errors: MB401, MB403, MB404, MBP01 precondition_failed, MB400, MBA01 appointment_not_active, '
    'MBA02 cancellation_window_closed.';
REVOKE ALL ON FUNCTION booking_api.cancel_appointment(bigint, bigint, text, bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.cancel_appointment(bigint, bigint, text, bigint[]) TO medbook_api;
