/* Why: an event's payload is the resource as the REST API shows it
   (api/resources.py slot()), built in SQL so that a slot changed in psql
   produces the same event as one changed over HTTP. tests/test_events.py
   compares the two. PL/pgSQL, so its plan is cached (see 090). */
CREATE OR REPLACE FUNCTION booking.booking_slot_json(p_slot booking.availability_slots)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    RETURN jsonb_build_object(
        'id', p_slot.id,
        'practitioner_id', p_slot.practitioner_id,
        'start_time', booking_json_time(p_slot.start_time),
        'end_time', booking_json_time(p_slot.end_time),
        'status', p_slot.status);
END
$$;

COMMENT ON FUNCTION booking.booking_slot_json(booking.availability_slots) IS
    'A slot row as the REST API''s slot JSON (the payload of slot events).';
REVOKE ALL ON FUNCTION booking.booking_slot_json(booking.availability_slots) FROM PUBLIC;
