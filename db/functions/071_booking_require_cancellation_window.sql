/* Why: cancelling and rescheduling are allowed in the same window. The
   appointment's patient may act until the practitioner's cancellation notice
   before the start (default 24 hours), the practitioner until the start; at or
   after the deadline nobody can (MBA02). */
CREATE OR REPLACE FUNCTION booking.booking_require_cancellation_window(
    p_actor_user_id bigint,
    p_appointment   booking.appointments,
    p_now           timestamptz
)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_notice   interval;
    v_deadline timestamptz;
BEGIN
    IF EXISTS (SELECT 1 FROM patients WHERE id = p_appointment.patient_id AND user_id = p_actor_user_id) THEN
        SELECT s.cancellation_notice INTO v_notice
          FROM practitioner_booking_settings s WHERE s.practitioner_id = p_appointment.practitioner_id;
        v_deadline := p_appointment.start_time - coalesce(v_notice, interval '24 hours');
    ELSE
        v_deadline := p_appointment.start_time;
    END IF;
    IF p_now >= v_deadline THEN
        RAISE EXCEPTION 'the cancellation window has closed'
            USING ERRCODE = 'MBA02',
                  DETAIL = format('appointment_id=%s deadline=%s', p_appointment.id, v_deadline),
                  HINT = 'Contact the practitioner.';
    END IF;
END
$$;

COMMENT ON FUNCTION booking.booking_require_cancellation_window(bigint, booking.appointments, timestamptz) IS
    'Raises MBA02 cancellation_window_closed unless the acting user may still cancel or reschedule the '
    'appointment at p_now (patient: before the cancellation notice; practitioner: before the start). Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_require_cancellation_window(bigint, booking.appointments, timestamptz) FROM PUBLIC;
