/* Why: moving or resizing an available slot. A booked slot is never moved
   under its patient (MBS03 slot_booked: cancel first), and a slot that has
   started is history. The UPDATE re-checks status = 'available' under the row
   lock, so a booking that commits between the read and the write wins and this
   call reports slot_booked instead of moving a booked slot.

   Optimistic concurrency: with p_if_match (the versions the caller last saw,
   from the slot's ETag), the change is made only while the slot's version is
   one of them, else MBP01 precondition_failed and nothing changes. The UPDATE
   re-checks the version under the row lock, so of two editors holding the same
   version exactly one succeeds. */
CREATE OR REPLACE FUNCTION booking_api.update_slot(
    p_actor_user_id bigint,
    p_slot_id       bigint,
    p_start_time    timestamptz DEFAULT NULL,
    p_end_time      timestamptz DEFAULT NULL,
    p_if_match      bigint[] DEFAULT NULL
)
RETURNS booking_api.slot
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_now     timestamptz := booking_api.booking_now();
    v_slot    availability_slots;
    v_updated availability_slots;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    IF p_start_time IS NULL AND p_end_time IS NULL THEN
        RAISE EXCEPTION 'nothing to update'
            USING ERRCODE = 'MB400', HINT = 'Give start_time, end_time or both.';
    END IF;

    SELECT * INTO v_slot FROM availability_slots WHERE id = p_slot_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'slot not found' USING ERRCODE = 'MB404', DETAIL = format('slot_id=%s', p_slot_id);
    END IF;
    PERFORM booking_require_practitioner(p_actor_user_id, v_slot.practitioner_id);
    PERFORM booking_lock_practitioner(v_slot.practitioner_id, true);  -- see 006_booking_lock_practitioner.sql
    PERFORM booking_require_version(v_slot.version, p_if_match, format('slot_id=%s', p_slot_id));
    IF v_slot.status = 'booked' THEN
        RAISE EXCEPTION 'the slot is booked'
            USING ERRCODE = 'MBS03', DETAIL = format('slot_id=%s', p_slot_id),
                  HINT = 'Cancel the appointment first, then change the slot.';
    END IF;
    IF v_slot.start_time <= v_now THEN
        RAISE EXCEPTION 'the slot has already started'
            USING ERRCODE = 'MBS04', DETAIL = format('slot_id=%s', p_slot_id),
                  HINT = 'Only future slots can be changed.';
    END IF;
    PERFORM booking_validate_slot_times(coalesce(p_start_time, v_slot.start_time),
                                        coalesce(p_end_time, v_slot.end_time), v_now);

    BEGIN
        UPDATE availability_slots
           SET start_time = coalesce(p_start_time, start_time),
               end_time = coalesce(p_end_time, end_time),
               updated_at = v_now
         WHERE id = p_slot_id AND status = 'available'
           AND (p_if_match IS NULL OR version = ANY (p_if_match))
        RETURNING * INTO v_updated;
    EXCEPTION WHEN exclusion_violation THEN
        RAISE EXCEPTION 'the slot would overlap another slot of this practitioner'
            USING ERRCODE = 'MBS02', DETAIL = format('slot_id=%s', p_slot_id),
                  HINT = 'Choose a time that does not overlap existing slots.';
    END;
    IF v_updated.id IS NULL THEN
        SELECT * INTO v_slot FROM availability_slots WHERE id = p_slot_id;
        IF FOUND THEN
            PERFORM booking_require_version(v_slot.version, p_if_match, format('slot_id=%s', p_slot_id));
            RAISE EXCEPTION 'the slot is booked'
                USING ERRCODE = 'MBS03', DETAIL = format('slot_id=%s', p_slot_id),
                      HINT = 'Cancel the appointment first, then change the slot.';
        END IF;
        RAISE EXCEPTION 'slot not found' USING ERRCODE = 'MB404', DETAIL = format('slot_id=%s', p_slot_id);
    END IF;
    RETURN slot_out(v_updated);
END
$$;

COMMENT ON FUNCTION booking_api.update_slot(bigint, bigint, timestamptz, timestamptz, bigint[]) IS
    'Moves or resizes an available future slot (NULL keeps a time). Acting user must own it. With p_if_match, '
    'only while the slot''s version is one of those given. Errors: MB401, MB403, MB404, MB400, '
    'MBP01 precondition_failed, MBS03 slot_booked, MBS04 slot_in_past, MBS05 invalid_time_range, MBS02 slot_overlap.';
REVOKE ALL ON FUNCTION booking_api.update_slot(bigint, bigint, timestamptz, timestamptz, bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.update_slot(bigint, bigint, timestamptz, timestamptz, bigint[]) TO medbook_api;
