/* Why: practices follow up on the visits that did not happen. See booking_record_attendance() (072). */
CREATE OR REPLACE FUNCTION booking_api.mark_no_show(
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
    RETURN appointment_out(booking_record_attendance(p_actor_user_id, p_appointment_id, 'no_show'));
END
$$;

COMMENT ON FUNCTION booking_api.mark_no_show(bigint, bigint) IS
    'Records that the patient did not come: a booked appointment that has started becomes no_show (final; the '
    'slot stays booked). Its practitioner only. Errors: MB401, MB403, MB404, MBA01 appointment_not_active, '
    'MBA03 appointment_not_started.';
REVOKE ALL ON FUNCTION booking_api.mark_no_show(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.mark_no_show(bigint, bigint) TO medbook_api;
