/* Why: cancelling frees the slot in the same transaction, so it can be booked
   again at once. The window (booking_require_cancellation_window(), 071): the
   patient may cancel until the practitioner's cancellation_notice before the
   start (default 24 hours), the practitioner until the start; at or after the
   deadline nobody can (MBA02). Only a booked appointment can be cancelled
   (MBA01 for a cancelled, completed or no-show one). Lock order is
   appointment row, then slot row; booking_api.book_slot() only ever claims an 'available'
   slot, which a slot with a booked appointment is not until this commits, so
   the two never wait on each other in a cycle. Two concurrent cancellations
   serialise on the appointment row; the second finds it cancelled (MBA01). */
CREATE OR REPLACE FUNCTION booking_api.cancel_appointment(
    p_actor_user_id  bigint,
    p_appointment_id bigint,
    p_reason         text DEFAULT NULL
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
    PERFORM booking_require_user(p_actor_user_id);
    v_appointment := booking_visible_appointment(p_actor_user_id, p_appointment_id);
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
    RETURNING * INTO v_appointment;
    IF v_appointment.id IS NULL THEN
        RAISE EXCEPTION 'the appointment is not active'
            USING ERRCODE = 'MBA01', DETAIL = format('appointment_id=%s', p_appointment_id);
    END IF;
    UPDATE availability_slots SET status = 'available', updated_at = v_now
     WHERE id = v_appointment.slot_id;
    RETURN appointment_out(v_appointment);
END
$$;

COMMENT ON FUNCTION booking_api.cancel_appointment(bigint, bigint, text) IS
    'Cancels a booked appointment and frees its slot. Patient: until the cancellation notice before the start; '
    'practitioner: until the start. Errors: MB401, MB403, MB404, MB400, MBA01 appointment_not_active, '
    'MBA02 cancellation_window_closed.';
REVOKE ALL ON FUNCTION booking_api.cancel_appointment(bigint, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.cancel_appointment(bigint, bigint, text) TO medbook_api;
