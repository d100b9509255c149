/* Why: the only way to publish availability. Overlap is refused by the
   availability_slots_no_overlap exclusion constraint, which also settles two
   concurrent inserts; its error is turned into MBS02 (slot_overlap) here. */
CREATE OR REPLACE FUNCTION booking_api.create_slot(
    p_actor_user_id   bigint,
    p_practitioner_id bigint,
    p_start_time      timestamptz,
    p_end_time        timestamptz
)
RETURNS booking_api.slot
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_now  timestamptz := booking_api.booking_now();
    v_slot availability_slots;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner(p_actor_user_id, p_practitioner_id);
    PERFORM booking_validate_slot_times(p_start_time, p_end_time, v_now);
    PERFORM booking_lock_practitioner(p_practitioner_id, true);  -- see 006_booking_lock_practitioner.sql

    BEGIN
        INSERT INTO availability_slots (practitioner_id, start_time, end_time, created_at, updated_at)
        VALUES (p_practitioner_id, p_start_time, p_end_time, v_now, v_now)
        RETURNING * INTO v_slot;
    EXCEPTION WHEN exclusion_violation THEN
        RAISE EXCEPTION 'the slot overlaps another slot of this practitioner'
            USING ERRCODE = 'MBS02',
                  DETAIL = format('practitioner_id=%s start_time=%s end_time=%s',
                                  p_practitioner_id, p_start_time, p_end_time),
                  HINT = 'Choose a time that does not overlap existing slots.';
    END;
    RETURN slot_out(v_slot);
END
$$;

COMMENT ON FUNCTION booking_api.create_slot(bigint, bigint, timestamptz, timestamptz) IS
    'Publishes an available slot for a practitioner. Acting user must be that practitioner. '
    'Errors: MB401, MB403, MB404, MB400, MBS05 invalid_time_range, MBS04 slot_in_past, MBS02 slot_overlap.';
REVOKE ALL ON FUNCTION booking_api.create_slot(bigint, bigint, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.create_slot(bigint, bigint, timestamptz, timestamptz) TO medbook_api;
