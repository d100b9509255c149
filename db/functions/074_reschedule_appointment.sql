/* Why: a patient who wants another time must never lose the appointment they
   hold while looking for it. Rescheduling is one transaction: the old
   appointment is cancelled (reason 'rescheduled'), the new slot is claimed
   exactly as book_slot() claims it (booking_claim_slot(), 070), the new
   appointment is inserted with rescheduled_from, the old one gets
   rescheduled_to, and the old slot is freed. Any error rolls all of it back:
   the old appointment is untouched.

   Who and when: the same people and windows as cancel_appointment() (the
   patient until the cancellation notice before the start, the practitioner
   until the start; MBA02). The new slot must be another slot of the same
   practitioner (MBA04 invalid_reschedule), available (MBS01) and not started
   (MBS04); the appointment must be booked (MBA01).

   Concurrency: the conditional UPDATE of the old appointment (WHERE status =
   'booked') is taken first, so two reschedules of one appointment, or a
   reschedule and a cancellation, serialise on its row lock and the second gets
   appointment_not_active. Then the new slot's claim settles any race with
   bookings or other reschedules of that slot (one winner). Lock order is the
   practitioner's shared advisory lock, the appointment row, the new slot row,
   the old slot row. The new slot is only claimed while 'available' and the old
   one is only freed by its holder, so no two of these wait on each other in a
   cycle. */
CREATE OR REPLACE FUNCTION booking_api.reschedule_appointment(
    p_actor_user_id  bigint,
    p_appointment_id bigint,
    p_slot_id        bigint
)
RETURNS booking_api.appointment
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_now      timestamptz := booking_api.booking_now();
    v_old      appointments;
    v_target   availability_slots;
    v_slot     availability_slots;
    v_new      appointments;
BEGIN
    v_old := booking_visible_appointment(p_actor_user_id, p_appointment_id);
    SELECT * INTO v_target FROM availability_slots WHERE id = p_slot_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'slot not found' USING ERRCODE = 'MB404', DETAIL = format('slot_id=%s', p_slot_id);
    END IF;
    IF v_target.practitioner_id <> v_old.practitioner_id OR v_target.id = v_old.slot_id THEN
        RAISE EXCEPTION 'an appointment can only move to another slot of the same practitioner'
            USING ERRCODE = 'MBA04',
                  DETAIL = format('appointment_id=%s slot_id=%s', p_appointment_id, p_slot_id),
                  HINT = 'Choose another slot of the appointment''s practitioner.';
    END IF;

    PERFORM booking_lock_practitioner(v_old.practitioner_id, false);  -- see 006_booking_lock_practitioner.sql
    IF v_old.status <> 'booked' THEN
        RAISE EXCEPTION 'the appointment is not active'
            USING ERRCODE = 'MBA01', DETAIL = format('appointment_id=%s status=%s', p_appointment_id, v_old.status);
    END IF;
    PERFORM booking_require_cancellation_window(p_actor_user_id, v_old, v_now);

    UPDATE appointments
       SET status = 'cancelled', cancelled_at = v_now, cancelled_by = p_actor_user_id,
           cancellation_reason = 'rescheduled'
     WHERE id = p_appointment_id AND status = 'booked'
    RETURNING * INTO v_old;
    IF v_old.id IS NULL THEN
        RAISE EXCEPTION 'the appointment is not active'
            USING ERRCODE = 'MBA01', DETAIL = format('appointment_id=%s', p_appointment_id);
    END IF;

    v_slot := booking_claim_slot(p_slot_id, v_now);

    INSERT INTO appointments (slot_id, patient_id, practitioner_id, status, start_time, end_time, booked_at,
                              rescheduled_from)
    VALUES (v_slot.id, v_old.patient_id, v_old.practitioner_id, 'booked', v_slot.start_time, v_slot.end_time,
            v_now, v_old.id)
    RETURNING * INTO v_new;
    UPDATE appointments SET rescheduled_to = v_new.id WHERE id = v_old.id;
    UPDATE availability_slots SET status = 'available', updated_at = v_now WHERE id = v_old.slot_id;
    RETURN appointment_out(v_new);
END
$$;

COMMENT ON FUNCTION booking_api.reschedule_appointment(bigint, bigint, bigint) IS
    'Moves a booked appointment to another available future slot of the same practitioner in one transaction: '
    'returns the new appointment (rescheduled_from = the old one, which is cancelled with reason ''rescheduled'' '
    'and rescheduled_to = the new one). Who and when as for cancel_appointment(). Errors: MB401, MB403, MB404, '
    'MBA04 invalid_reschedule, MBA01 appointment_not_active, MBA02 cancellation_window_closed, '
    'MBS04 slot_in_past, MBS01 slot_unavailable.';
REVOKE ALL ON FUNCTION booking_api.reschedule_appointment(bigint, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.reschedule_appointment(bigint, bigint, bigint) TO medbook_api;
