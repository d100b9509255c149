/* Why: who booked, cancelled, rescheduled or recorded attendance, and when.
   The rows come from appointment_history, written by trigger for every state
   change and never changed; only the appointment's patient and practitioner may
   read them (booking_visible_appointment()). */
CREATE OR REPLACE FUNCTION booking_api.list_appointment_history(
    p_actor_user_id  bigint,
    p_appointment_id bigint
)
RETURNS TABLE (from_status text, to_status text, actor_user_id bigint, changed_at timestamptz)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    PERFORM booking_visible_appointment(p_actor_user_id, p_appointment_id);
    RETURN QUERY
        SELECT h.from_status, h.to_status, h.actor_user_id, h.changed_at
          FROM appointment_history h
         WHERE h.appointment_id = p_appointment_id
         ORDER BY h.id;
END
$$;

COMMENT ON FUNCTION booking_api.list_appointment_history(bigint, bigint) IS
    'The state changes of an appointment, oldest first, to its patient or practitioner. Errors: MB401, MB403, MB404.';
REVOKE ALL ON FUNCTION booking_api.list_appointment_history(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.list_appointment_history(bigint, bigint) TO medbook_api;
