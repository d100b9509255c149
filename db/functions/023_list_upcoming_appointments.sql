/* Why: "what is coming up" for a patient: booked appointments that have not
   started, soonest first, from appointments_by_patient (the patient, from now
   on; migration 0014 dropped the partial index that served only this). Only the
   patient themself may list them. */
CREATE OR REPLACE FUNCTION booking_api.list_upcoming_appointments(
    p_actor_user_id bigint,
    p_patient_id    bigint,
    p_limit         integer DEFAULT 100
)
RETURNS SETOF booking_api.appointment
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_own_patient(p_actor_user_id, p_patient_id);
    PERFORM booking_require_limit(p_limit);
    RETURN QUERY
        SELECT (appointment_out(a)).* FROM appointments a
         WHERE patient_id = p_patient_id AND status = 'booked' AND start_time > booking_api.booking_now()
         ORDER BY start_time
         LIMIT p_limit;
END
$$;

COMMENT ON FUNCTION booking_api.list_upcoming_appointments(bigint, bigint, integer) IS
    'Booked appointments of a patient that have not started, soonest first (at most p_limit, 1-500). '
    'Only the patient may call it. Errors: MB401, MB403, MB404, MB400.';
REVOKE ALL ON FUNCTION booking_api.list_upcoming_appointments(bigint, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.list_upcoming_appointments(bigint, bigint, integer) TO medbook_api;
