/* Why: a patient sees their own appointments: what is coming (upcoming, the
   default, soonest first), what happened (past: started or attended), what was
   cancelled, or everything, latest first; one keyset page at a time
   (booking_appointment_page(), 073). Only the patient themself may list them. */
CREATE OR REPLACE FUNCTION booking_api.list_patient_appointments(
    p_actor_user_id    bigint,
    p_patient_id       bigint,
    p_limit            integer DEFAULT 100,
    p_status           text DEFAULT 'upcoming',
    p_after_start_time timestamptz DEFAULT NULL,
    p_after_id         bigint DEFAULT NULL
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
    RETURN QUERY SELECT * FROM booking_appointment_page('patient_id', p_patient_id, p_status, p_limit,
                                                        p_after_start_time, p_after_id);
END
$$;

COMMENT ON FUNCTION booking_api.list_patient_appointments(bigint, bigint, integer, text, timestamptz, bigint) IS
    'A patient''s appointments by status: upcoming (default; booked, not started, soonest first), past (started '
    'or attended), cancelled, or all (latest first); at most p_limit (1-500) after the keyset position '
    '(p_after_start_time, p_after_id). Only the patient may call it. Errors: MB401, MB403, MB404, MB400.';
REVOKE ALL ON FUNCTION booking_api.list_patient_appointments(bigint, bigint, integer, text, timestamptz, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.list_patient_appointments(bigint, bigint, integer, text, timestamptz, bigint)
    TO medbook_api;
