/* Why: the practitioner turns their weekly rules into slots, from now
   through a local date of their choosing (at most two years ahead). The
   rules, the daylight-saving behaviour and what is skipped are in
   booking_publish() (056); publishing again creates nothing new. */
CREATE OR REPLACE FUNCTION booking_api.publish_schedule(
    p_actor_user_id   bigint,
    p_practitioner_id bigint,
    p_through         date
)
RETURNS TABLE (created integer, skipped integer)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner(p_actor_user_id, p_practitioner_id);
    RETURN QUERY SELECT p.created, p.skipped FROM booking_publish(p_practitioner_id, p_through) p;
END
$$;

COMMENT ON FUNCTION booking_api.publish_schedule(bigint, bigint, date) IS
    'Creates the slots the practitioner''s weekly rules describe from today through local date p_through '
    '(at most two years ahead); returns how many were created and how many skipped (started, overlapping a slot '
    'or time off). Idempotent. Acting user must be that practitioner. Errors: MB401, MB403, MB404, MB400, '
    'MBS05 invalid_time_range.';
REVOKE ALL ON FUNCTION booking_api.publish_schedule(bigint, bigint, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.publish_schedule(bigint, bigint, date) TO medbook_api;
