/* Why: reading and cancelling an appointment are allowed to the same two
   people, its patient and its practitioner; this helper is that rule. It
   also answers MB401 for an unknown acting user, first, as its callers did
   with booking_require_user() before it: the user is looked up only when
   the actor is neither (a patient or practitioner row implies its user), so
   the usual call reads two rows, not three. */
CREATE OR REPLACE FUNCTION booking.booking_visible_appointment(
    p_actor_user_id  bigint,
    p_appointment_id bigint
)
RETURNS booking.appointments
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_appointment appointments;
BEGIN
    SELECT * INTO v_appointment FROM appointments WHERE id = p_appointment_id;
    IF NOT FOUND THEN
        PERFORM booking_require_user(p_actor_user_id);
        RAISE EXCEPTION 'appointment not found'
            USING ERRCODE = 'MB404', DETAIL = format('appointment_id=%s', p_appointment_id);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM patients WHERE id = v_appointment.patient_id AND user_id = p_actor_user_id)
       AND NOT EXISTS (SELECT 1 FROM public.practitioners
                        WHERE id = v_appointment.practitioner_id AND user_id = p_actor_user_id) THEN
        PERFORM booking_require_user(p_actor_user_id);
        RAISE EXCEPTION 'only the appointment''s patient or practitioner may see or change it'
            USING ERRCODE = 'MB403',
                  DETAIL = format('appointment_id=%s user_id=%s', p_appointment_id, p_actor_user_id);
    END IF;
    RETURN v_appointment;
END
$$;

COMMENT ON FUNCTION booking.booking_visible_appointment(bigint, bigint) IS
    'Returns the appointment if the acting user is its patient or practitioner; raises MB401 (unknown user), MB404 or MB403 otherwise. Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_visible_appointment(bigint, bigint) FROM PUBLIC;
