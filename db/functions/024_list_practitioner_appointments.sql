/* Why: a practitioner needs to see who is coming: their booked appointments
   that have not started, soonest first (appointments_by_practitioner). Only
   the practitioner themself may list them. */
CREATE OR REPLACE FUNCTION booking_api.list_practitioner_appointments(
    p_actor_user_id   bigint,
    p_practitioner_id bigint,
    p_limit           integer DEFAULT 100
)
RETURNS SETOF booking_api.appointment
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner(p_actor_user_id, p_practitioner_id);
    PERFORM booking_require_limit(p_limit);
    RETURN QUERY
        SELECT (appointment_out(a)).* FROM appointments a
         WHERE practitioner_id = p_practitioner_id AND status = 'booked' AND start_time > booking_api.booking_now()
         ORDER BY start_time
         LIMIT p_limit;
END
$$;

COMMENT ON FUNCTION booking_api.list_practitioner_appointments(bigint, bigint, integer) IS
    'Booked appointments of a practitioner that have not started, soonest first (at most p_limit, 1-500). '
    'Only the practitioner may call it. Errors: MB401, MB403, MB404, MB400.';
REVOKE ALL ON FUNCTION booking_api.list_practitioner_appointments(bigint, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.list_practitioner_appointments(bigint, bigint, integer) TO medbook_api;
