/* Why: any signed-in user may look at a slot (its status says whether it is free). */
CREATE OR REPLACE FUNCTION booking_api.get_slot(
    p_actor_user_id bigint,
    p_slot_id       bigint
)
RETURNS booking_api.slot
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_slot availability_slots;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    SELECT * INTO v_slot FROM availability_slots WHERE id = p_slot_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'slot not found' USING ERRCODE = 'MB404', DETAIL = format('slot_id=%s', p_slot_id);
    END IF;
    RETURN slot_out(v_slot);
END
$$;

COMMENT ON FUNCTION booking_api.get_slot(bigint, bigint) IS
    'Returns one slot to any existing user. Errors: MB401, MB404.';
REVOKE ALL ON FUNCTION booking_api.get_slot(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.get_slot(bigint, bigint) TO medbook_api;
