/* Why: FHIR changes a resource by replacing it whole (PUT). The one change an
   appointment allows through a replacement is its cancellation: status booked
   to cancelled, with an optional reason, which is booking_api.cancel_appointment()
   itself, its window and its locking included. Everything a replacement
   states is compared here with the stored appointment, so that the decision
   "what may change" is the database's: the booking facts (slot, patient,
   practitioner, times) and the reschedule links (rescheduled_from,
   rescheduled_to: set only by reschedule_appointment()) never change (MBF01), a
   reason can only come with the cancellation, and nothing else moves a status.
   A replacement that states exactly what is stored changes nothing and returns
   the appointment (a PUT sent twice is answered twice the same way).

   Only the appointment's patient or practitioner gets this far (MB403, as
   for reading it). With p_if_match (the versions the caller last read, from
   the ETag W/"n"), the replacement applies only to one of those versions:
   otherwise MBP01 precondition_failed, before any comparison (also for an
   unchanged replacement), and the cancellation re-checks it under the row lock
   (cancel_appointment()). The comparison reads the appointment without a lock:
   if it is cancelled concurrently, cancel_appointment() re-checks under the
   row lock and reports MBP01 (with p_if_match) or MBA01. */
CREATE OR REPLACE FUNCTION booking_api.replace_appointment(
    p_actor_user_id    bigint,
    p_appointment_id   bigint,
    p_status           text,
    p_slot_id          bigint,
    p_patient_id       bigint,
    p_practitioner_id  bigint,
    p_start_time       timestamptz,
    p_end_time         timestamptz,
    p_reason           text DEFAULT NULL,
    p_rescheduled_from bigint DEFAULT NULL,
    p_rescheduled_to   bigint DEFAULT NULL,
    p_if_match         bigint[] DEFAULT NULL
)
RETURNS booking_api.appointment
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_stored appointments;
BEGIN
    v_stored := booking_visible_appointment(p_actor_user_id, p_appointment_id);
    PERFORM booking_require_version(v_stored.version, p_if_match, format('appointment_id=%s', p_appointment_id));
    IF (p_slot_id, p_patient_id, p_practitioner_id, p_start_time, p_end_time)
       IS DISTINCT FROM (v_stored.slot_id, v_stored.patient_id, v_stored.practitioner_id, v_stored.start_time,
                         v_stored.end_time) THEN
        RAISE EXCEPTION 'an appointment''s slot, patient, practitioner and times cannot change'
            USING ERRCODE = 'MBF01', DETAIL = format('appointment_id=%s', p_appointment_id),
                  HINT = 'Send the appointment as read, changing only status to cancelled and the reason; '
                         'to move it to another slot, reschedule it.';
    END IF;
    IF (p_rescheduled_from, p_rescheduled_to) IS DISTINCT FROM (v_stored.rescheduled_from, v_stored.rescheduled_to) THEN
        RAISE EXCEPTION 'an appointment''s reschedule links cannot change'
            USING ERRCODE = 'MBF01',
                  DETAIL = format('appointment_id=%s rescheduled_from=%s rescheduled_to=%s', p_appointment_id,
                                  v_stored.rescheduled_from, v_stored.rescheduled_to),
                  HINT = 'Send the appointment as read, with the extensions that link it to the appointment it '
                         'replaced or that replaced it.';
    END IF;
    IF p_status = v_stored.status AND nullif(btrim(p_reason), '') IS NOT DISTINCT FROM v_stored.cancellation_reason THEN
        RETURN appointment_out(v_stored);
    END IF;
    IF v_stored.status = 'booked' AND p_status = 'cancelled' THEN
        RETURN booking_api.cancel_appointment(p_actor_user_id, p_appointment_id, p_reason, p_if_match);
    END IF;
    RAISE EXCEPTION 'the only change a replacement can make is cancelling a booked appointment'
        USING ERRCODE = 'MBF01',
              DETAIL = format('appointment_id=%s status=%s requested=%s', p_appointment_id, v_stored.status,
                              left(p_status, 32)),
              HINT = 'Send status cancelled (with an optional reason) to cancel; nothing else can be changed.';
END
$$;

COMMENT ON FUNCTION booking_api.replace_appointment(bigint, bigint, text, bigint, bigint, bigint, timestamptz,
                                                    timestamptz, text, bigint, bigint, bigint[]) IS
    'Applies a whole replacement of an appointment (FHIR PUT): identical to the stored one, it is returned '
    'unchanged; booked to cancelled (with an optional reason) goes through cancel_appointment(); any other '
    'difference (also in the reschedule links) is MBF01 appointment_mismatch. With p_if_match, only while the '
    'appointment''s version is one of those given. Errors: MB401, MB403, MB404, MBP01 precondition_failed, MB400, '
    'MBA01 appointment_not_active, MBA02 cancellation_window_closed, MBF01 appointment_mismatch.';
REVOKE ALL ON FUNCTION booking_api.replace_appointment(bigint, bigint, text, bigint, bigint, bigint, timestamptz,
                                                       timestamptz, text, bigint, bigint, bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.replace_appointment(bigint, bigint, text, bigint, bigint, bigint, timestamptz,
                                                          timestamptz, text, bigint, bigint, bigint[]) TO medbook_api;
