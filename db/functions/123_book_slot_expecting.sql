/* Why: a FHIR Appointment that books a slot also states who it is for and, if
   the client chooses, whose slot it is and when. Those statements must be
   true, or the client would believe in a booking that is not the one made.
   The booking itself is booking_api.book_slot(), unchanged, so a booking made
   here races every other booker of the slot under exactly the same guarantee
   (one conditional UPDATE under the slot's row lock; the loser gets MBS01).

   The patient named must be the acting user's own (MB403: nobody books for
   someone else); that is checked before the claim. The practitioner and the
   times, when given (NULL: not stated), are compared with the appointment
   book_slot() made, in the same transaction: a mismatch raises MBF01 and the
   whole booking rolls back, so a waiting booker of the slot wins instead. */
CREATE OR REPLACE FUNCTION booking_api.book_slot_expecting(
    p_actor_user_id   bigint,
    p_slot_id         bigint,
    p_patient_id      bigint,
    p_practitioner_id bigint DEFAULT NULL,
    p_start_time      timestamptz DEFAULT NULL,
    p_end_time        timestamptz DEFAULT NULL
)
RETURNS booking_api.appointment
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_appointment booking_api.appointment;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    IF NOT EXISTS (SELECT 1 FROM patients pa WHERE pa.id = p_patient_id AND pa.user_id = p_actor_user_id) THEN
        RAISE EXCEPTION 'patients book only for themselves'
            USING ERRCODE = 'MB403', DETAIL = format('patient_id=%s user_id=%s', p_patient_id, p_actor_user_id),
                  HINT = 'Name your own patient id as the Patient participant.';
    END IF;
    v_appointment := booking_api.book_slot(p_actor_user_id, p_slot_id);
    -- A NULL expectation compares as NULL, which is not a mismatch.
    IF coalesce(p_practitioner_id <> v_appointment.practitioner_id, false)
       OR coalesce(p_start_time <> v_appointment.start_time, false)
       OR coalesce(p_end_time <> v_appointment.end_time, false) THEN
        RAISE EXCEPTION 'the appointment described is not the slot''s'
            USING ERRCODE = 'MBF01',
                  DETAIL = format('slot_id=%s practitioner_id=%s', p_slot_id, v_appointment.practitioner_id),
                  HINT = 'Leave out the practitioner and times, or give the slot''s own.';
    END IF;
    RETURN v_appointment;
END
$$;

COMMENT ON FUNCTION booking_api.book_slot_expecting(bigint, bigint, bigint, bigint, timestamptz, timestamptz) IS
    'Books a slot with book_slot() for the acting patient, who must be p_patient_id (MB403); the practitioner and '
    'times, when given, must be the slot''s, else MBF01 appointment_mismatch and nothing is booked. '
    'Errors: MB401, MB403, MB404, MBS04 slot_in_past, MBS01 slot_unavailable, MBF01 appointment_mismatch.';
REVOKE ALL ON FUNCTION booking_api.book_slot_expecting(bigint, bigint, bigint, bigint, timestamptz, timestamptz)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.book_slot_expecting(bigint, bigint, bigint, bigint, timestamptz, timestamptz)
    TO medbook_api;
