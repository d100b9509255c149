/* Why: the practitioner sees the time off that still matters: the periods
   that have not ended, soonest first. Reasons are private, so only the
   practitioner may list them. At most 500 rows (p_limit, 1-500). */
CREATE TYPE booking_api.time_off AS (
    id              bigint,
    practitioner_id bigint,
    start_time      timestamptz,
    end_time        timestamptz,
    reason          text
);
COMMENT ON TYPE booking_api.time_off IS
    'A period a practitioner is away; the reason is shown to that practitioner only.';

CREATE OR REPLACE FUNCTION booking_api.list_time_off(
    p_actor_user_id   bigint,
    p_practitioner_id bigint,
    p_limit           integer DEFAULT 500
)
RETURNS SETOF booking_api.time_off
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner(p_actor_user_id, p_practitioner_id);
    PERFORM booking_require_limit(p_limit);
    RETURN QUERY
        SELECT t.id, t.practitioner_id, t.start_time, t.end_time, t.reason
          FROM time_off_periods t
         WHERE t.practitioner_id = p_practitioner_id
           AND tstzrange(t.start_time, t.end_time) && tstzrange(booking_api.booking_now(), NULL)
         ORDER BY t.start_time, t.id
         LIMIT p_limit;
END
$$;

COMMENT ON FUNCTION booking_api.list_time_off(bigint, bigint, integer) IS
    'A practitioner''s time off that has not ended, soonest first (at most p_limit, 1-500), to that practitioner '
    'only. Errors: MB401, MB403, MB404, MB400.';
REVOKE ALL ON FUNCTION booking_api.list_time_off(bigint, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.list_time_off(bigint, bigint, integer) TO medbook_api;
