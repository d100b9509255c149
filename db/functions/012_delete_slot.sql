/* Why: withdrawing availability. A booked slot is refused (MBS03): the
   practitioner cancels the appointment first, so the patient is told. The
   DELETE re-checks status = 'available' under the row lock. Cancelled
   appointments of the slot stay, with their own copy of the times; their
   slot_id becomes NULL (ON DELETE SET NULL). */
CREATE OR REPLACE FUNCTION booking_api.delete_slot(
    p_actor_user_id bigint,
    p_slot_id       bigint
)
RETURNS booking_api.slot
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_slot    availability_slots;
    v_deleted availability_slots;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    SELECT * INTO v_slot FROM availability_slots WHERE id = p_slot_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'slot not found' USING ERRCODE = 'MB404', DETAIL = format('slot_id=%s', p_slot_id);
    END IF;
    PERFORM booking_require_practitioner(p_actor_user_id, v_slot.practitioner_id);

    DELETE FROM availability_slots
     WHERE id = p_slot_id AND status = 'available'
    RETURNING * INTO v_deleted;
    IF v_deleted.id IS NULL THEN
        IF EXISTS (SELECT 1 FROM availability_slots WHERE id = p_slot_id) THEN
            RAISE EXCEPTION 'the slot is booked'
                USING ERRCODE = 'MBS03', DETAIL = format('slot_id=%s', p_slot_id),
                      HINT = 'Cancel the appointment first, then delete the slot.';
        END IF;
        RAISE EXCEPTION 'slot not found' USING ERRCODE = 'MB404', DETAIL = format('slot_id=%s', p_slot_id);
    END IF;
    RETURN slot_out(v_deleted);
END
$$;

COMMENT ON FUNCTION booking_api.delete_slot(bigint, bigint) IS
    'Deletes an available slot and returns it. Acting user must own it. '
    'Errors: MB401, MB403, MB404, MBS03 slot_booked.';
REVOKE ALL ON FUNCTION booking_api.delete_slot(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.delete_slot(bigint, bigint) TO medbook_api;
