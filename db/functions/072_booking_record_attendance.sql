/* Why: after the visit the practitioner records whether the patient came.
   Only the appointment's practitioner (MB403 for its patient), only a booked
   appointment (MBA01), only at or after the start (MBA03). completed and
   no_show are final (the guard trigger refuses any later change), and the slot
   stays booked: it was used. Two concurrent recordings, or a recording racing a
   cancellation, serialise on the appointment row (UPDATE ... WHERE status =
   'booked'); the second gets appointment_not_active. The slot is not written,
   so no practitioner lock is needed. */
CREATE OR REPLACE FUNCTION booking.booking_record_attendance(
    p_actor_user_id  bigint,
    p_appointment_id bigint,
    p_outcome        text
)
RETURNS booking.appointments
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_now         timestamptz := booking_api.booking_now();
    v_appointment appointments;
BEGIN
    v_appointment := booking_visible_appointment(p_actor_user_id, p_appointment_id);
    IF NOT EXISTS (SELECT 1 FROM public.practitioners
                    WHERE id = v_appointment.practitioner_id AND user_id = p_actor_user_id) THEN
        RAISE EXCEPTION 'only the appointment''s practitioner records attendance'
            USING ERRCODE = 'MB403',
                  DETAIL = format('appointment_id=%s user_id=%s', p_appointment_id, p_actor_user_id);
    END IF;
    IF v_appointment.status <> 'booked' THEN
        RAISE EXCEPTION 'the appointment is not active'
            USING ERRCODE = 'MBA01', DETAIL = format('appointment_id=%s status=%s', p_appointment_id, v_appointment.status);
    END IF;
    IF v_now < v_appointment.start_time THEN
        RAISE EXCEPTION 'the appointment has not started'
            USING ERRCODE = 'MBA03',
                  DETAIL = format('appointment_id=%s start_time=%s', p_appointment_id, v_appointment.start_time),
                  HINT = 'Record attendance at or after the start.';
    END IF;

    UPDATE appointments
       SET status = p_outcome, attendance_recorded_at = v_now, attendance_recorded_by = p_actor_user_id
     WHERE id = p_appointment_id AND status = 'booked'
    RETURNING * INTO v_appointment;
    IF v_appointment.id IS NULL THEN
        RAISE EXCEPTION 'the appointment is not active'
            USING ERRCODE = 'MBA01', DETAIL = format('appointment_id=%s', p_appointment_id);
    END IF;
    RETURN v_appointment;
END
$$;

COMMENT ON FUNCTION booking.booking_record_attendance(bigint, bigint, text) IS
    'Records completed or no_show for a booked appointment that has started; its practitioner only. '
    'Raises MB401, MB403, MB404, MBA01, MBA03. Internal helper of complete_appointment() and mark_no_show().';
REVOKE ALL ON FUNCTION booking.booking_record_attendance(bigint, bigint, text) FROM PUBLIC;
