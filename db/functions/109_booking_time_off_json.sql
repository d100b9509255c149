/* Why: the payload of time_off events is the time off as the REST API shows
   it to its practitioner (api/resources.py time_off()), built in SQL like
   the slot and appointment payloads (091, 092). */
CREATE OR REPLACE FUNCTION booking.booking_time_off_json(p_time_off booking.time_off_periods)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    RETURN jsonb_build_object(
        'id', p_time_off.id,
        'practitioner_id', p_time_off.practitioner_id,
        'start_time', booking_json_time(p_time_off.start_time),
        'end_time', booking_json_time(p_time_off.end_time),
        'reason', p_time_off.reason);
END
$$;

COMMENT ON FUNCTION booking.booking_time_off_json(booking.time_off_periods) IS
    'A time off row as the REST API''s time off JSON (the payload of time_off events).';
REVOKE ALL ON FUNCTION booking.booking_time_off_json(booking.time_off_periods) FROM PUBLIC;
