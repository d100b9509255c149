/* Why: withdrawing availability. A booked slot is refused (MBS03): the
   practitioner cancels the appointment first, so the patient is told. The
   DELETE re-checks status = 'available' under the row lock. Cancelled
   appointments of the slot stay, with their own copy of the times; their
   slot_id becomes NULL (ON DELETE SET NULL). With p_if_match (versions from
   the slot's ETag) the slot is deleted only while its version is one of them,
   re-checked under the row lock, else MBP01 precondition_failed. */
CREATE OR REPLACE FUNCTION booking_api.delete_slot(
    p_actor_user_id bigint,
    p_slot_id       bigint,
    p_if_match      bigint[] DEFAULT NULL
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
    PERFORM booking_require_version(v_slot.version, p_if_match, format('slot_id=%s', p_slot_id));

    DELETE FROM availability_slots
     WHERE id = p_slot_id AND status = 'available'
       AND (p_if_match IS NULL OR version = ANY (p_if_match))
    RETURNING * INTO v_deleted;
    IF v_deleted.id IS NULL THEN
        SELECT * INTO v_slot FROM availability_slots WHERE id = p_slot_id;
        IF FOUND THEN
            PERFORM booking_require_version(v_slot.version, p_if_match, format('slot_id=%s', p_slot_id));
            RAISE EXCEPTION 'the slot is booked'
                USING ERRCODE = 'MBS03', DETAIL = format('slot_id=%s', p_slot_id),
                      HINT = 'Cancel the appointment first, then delete the slot.';
        END IF;
        RAISE EXCEPTION 'slot not found' USING ERRCODE = 'MB404', DETAIL = format('slot_id=%s', p_slot_id);
    END IF;
    RETURN slot_out(v_deleted);
END
$$;

COMMENT ON FUNCTION booking_api.delete_slot(bigint, bigint, bigint[]) IS
    'Deletes an available slot and returns it. Acting user must own it. With p_if_match, only while the slot''s '
    'version is one of those given. Errors: MB401, MB403, MB404, MBP01 precondition_failed, MBS03 slot_booked.';
REVOKE ALL ON FUNCTION booking_api.delete_slot(bigint, bigint, bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.delete_slot(bigint, bigint, bigint[]) TO medbook_api;
