/* Why: practices bill the visits that happened. See booking_record_attendance() (072). */
CREATE OR REPLACE FUNCTION booking_api.complete_appointment(
    p_actor_user_id  bigint,
    p_appointment_id bigint
)
RETURNS booking_api.appointment
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    RETURN appointment_out(booking_record_attendance(p_actor_user_id, p_appointment_id, 'completed'));
END
$$;

COMMENT ON FUNCTION booking_api.complete_appointment(bigint, bigint) IS
    'Records that the patient came: a booked appointment that has started becomes completed (final; the slot '
    'stays booked). Its practitioner only. Errors: MB401, MB403, MB404, MBA01 appointment_not_active, '
    'MBA03 appointment_not_started.';
REVOKE ALL ON FUNCTION booking_api.complete_appointment(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.complete_appointment(bigint, bigint) TO medbook_api;
