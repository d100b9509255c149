/* Why: time off entered by mistake, or cancelled plans. Deleting it recreates
   no slots: the practitioner publishes again (which now no longer skips that
   time) or adds slots by hand. The id must be time off of that practitioner
   (MB404 otherwise, so ids of others reveal nothing). */
CREATE OR REPLACE FUNCTION booking_api.delete_time_off(
    p_actor_user_id   bigint,
    p_practitioner_id bigint,
    p_time_off_id     bigint
)
RETURNS booking_api.time_off
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_time_off time_off_periods;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner(p_actor_user_id, p_practitioner_id);
    PERFORM booking_lock_practitioner(p_practitioner_id, true);  -- see 006_booking_lock_practitioner.sql
    DELETE FROM time_off_periods t
     WHERE t.id = p_time_off_id AND t.practitioner_id = p_practitioner_id
    RETURNING * INTO v_time_off;
    IF v_time_off.id IS NULL THEN
        RAISE EXCEPTION 'time off not found'
            USING ERRCODE = 'MB404',
                  DETAIL = format('practitioner_id=%s time_off_id=%s', p_practitioner_id, p_time_off_id);
    END IF;
    RETURN ROW(v_time_off.id, v_time_off.practitioner_id, v_time_off.start_time, v_time_off.end_time,
               v_time_off.reason)::booking_api.time_off;
END
$$;

COMMENT ON FUNCTION booking_api.delete_time_off(bigint, bigint, bigint) IS
    'Deletes one time off of a practitioner and returns it; recreates no slots. Acting user must be that '
    'practitioner. Errors: MB401, MB403, MB404.';
REVOKE ALL ON FUNCTION booking_api.delete_time_off(bigint, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.delete_time_off(bigint, bigint, bigint) TO medbook_api;
