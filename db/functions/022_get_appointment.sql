/* Why: an appointment is health information; only its patient and its
   practitioner may read it (MB403 for anyone else). */
CREATE OR REPLACE FUNCTION booking_api.get_appointment(
    p_actor_user_id  bigint,
    p_appointment_id bigint
)
RETURNS booking_api.appointment
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    RETURN appointment_out(booking_visible_appointment(p_actor_user_id, p_appointment_id));
END
$$;

COMMENT ON FUNCTION booking_api.get_appointment(bigint, bigint) IS
    'Returns an appointment to its patient or practitioner. Errors: MB401, MB403, MB404.';
REVOKE ALL ON FUNCTION booking_api.get_appointment(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.get_appointment(bigint, bigint) TO medbook_api;
