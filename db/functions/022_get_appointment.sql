/* Why: an appointment is health information; only its patient and its
   practitioner may read it (MB403 for anyone else). */
CREATE OR REPLACE FUNCTION get_appointment(
    p_actor_user_id  bigint,
    p_appointment_id bigint
)
RETURNS appointments
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    RETURN booking_visible_appointment(p_actor_user_id, p_appointment_id);
END
$$;

COMMENT ON FUNCTION get_appointment(bigint, bigint) IS
    'Returns an appointment to its patient or practitioner. Errors: MB401, MB403, MB404.';
REVOKE ALL ON FUNCTION get_appointment(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_appointment(bigint, bigint) TO medbook_api;
