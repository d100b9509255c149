/* Why: the practitioner reads back the weekly rules they set. The rules are
   their own planning (a validity period can reveal leave), so only they may
   read them; patients see the slots the rules become. */
CREATE OR REPLACE FUNCTION booking_api.get_schedule(
    p_actor_user_id   bigint,
    p_practitioner_id bigint
)
RETURNS SETOF booking_api.schedule_rule
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner(p_actor_user_id, p_practitioner_id);
    RETURN QUERY
        SELECT r.weekday, r.local_start, r.local_end, r.slot_minutes, r.valid_from, r.valid_until
          FROM schedule_rules r
         WHERE r.practitioner_id = p_practitioner_id
         ORDER BY r.weekday, r.local_start, r.valid_from NULLS FIRST;
END
$$;

COMMENT ON FUNCTION booking_api.get_schedule(bigint, bigint) IS
    'A practitioner''s weekly schedule rules, to that practitioner only. Errors: MB401, MB403, MB404.';
REVOKE ALL ON FUNCTION booking_api.get_schedule(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.get_schedule(bigint, bigint) TO medbook_api;
