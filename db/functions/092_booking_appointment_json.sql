/* Why: an event's payload is the resource as the REST API shows it
   (api/resources.py appointment()), built in SQL so that an appointment
   changed in psql produces the same event as one changed over HTTP.
   tests/test_events.py compares the two. PL/pgSQL, so its plan is cached
   (see 090). */
CREATE OR REPLACE FUNCTION booking.booking_appointment_json(p_appointment booking.appointments)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    RETURN jsonb_build_object(
        'id', p_appointment.id,
        'slot_id', p_appointment.slot_id,
        'patient_id', p_appointment.patient_id,
        'practitioner_id', p_appointment.practitioner_id,
        'status', p_appointment.status,
        'start_time', booking_json_time(p_appointment.start_time),
        'end_time', booking_json_time(p_appointment.end_time),
        'booked_at', booking_json_time(p_appointment.booked_at),
        'cancelled_at', booking_json_time(p_appointment.cancelled_at),
        'cancelled_by', p_appointment.cancelled_by,
        'cancellation_reason', p_appointment.cancellation_reason,
        'rescheduled_from', p_appointment.rescheduled_from,
        'rescheduled_to', p_appointment.rescheduled_to);
END
$$;

COMMENT ON FUNCTION booking.booking_appointment_json(booking.appointments) IS
    'An appointment row as the REST API''s appointment JSON (the payload of appointment events).';
REVOKE ALL ON FUNCTION booking.booking_appointment_json(booking.appointments) FROM PUBLIC;
