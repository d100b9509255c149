/* Why: what a patient browses. With p_date, the slots that start on that
   local date in p_time_zone (default: the practitioner's zone): the day's
   bounds are computed as local midnights in that zone, so a daylight-saving
   day has its true 23 or 25 hours. Without p_date, the next p_limit slots.
   Either way only slots that have not started, earliest first, served by the
   partial index availability_slots_available_by_start. The columns are named,
   not slot_out(s): the index carries every one of them (status is 'available'
   by its predicate), so the scan is index-only and reads no heap page where
   the visibility map says the page is all-visible. */
CREATE OR REPLACE FUNCTION booking_api.list_available_slots(
    p_actor_user_id   bigint,
    p_practitioner_id bigint,
    p_date            date DEFAULT NULL,
    p_time_zone       text DEFAULT NULL,
    p_limit           integer DEFAULT 100
)
RETURNS SETOF booking_api.slot
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_now       timestamptz := booking_api.booking_now();
    v_time_zone text;
    v_from      timestamptz;
    v_to        timestamptz;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner_exists(p_practitioner_id);
    PERFORM booking_require_limit(p_limit);

    IF p_date IS NULL THEN
        RETURN QUERY
            SELECT s.id, s.practitioner_id, s.start_time, s.end_time, 'available'::text, s.version
              FROM availability_slots s
             WHERE practitioner_id = p_practitioner_id AND status = 'available'
               AND start_time > v_now
             ORDER BY start_time
             LIMIT p_limit;
        RETURN;
    END IF;

    IF p_time_zone IS NULL THEN
        SELECT s.time_zone INTO v_time_zone
          FROM practitioner_booking_settings s WHERE s.practitioner_id = p_practitioner_id;
        v_time_zone := coalesce(v_time_zone, 'UTC');
    ELSIF EXISTS (SELECT 1 FROM time_zones WHERE name = p_time_zone) THEN
        v_time_zone := p_time_zone;
    ELSE
        RAISE EXCEPTION 'unknown time zone'
            USING ERRCODE = 'MB400', DETAIL = format('time_zone=%s', left(p_time_zone, 64)),
                  HINT = 'Use an IANA name such as Europe/London.';
    END IF;

    v_from := p_date::timestamp AT TIME ZONE v_time_zone;
    v_to := (p_date + 1)::timestamp AT TIME ZONE v_time_zone;
    RETURN QUERY
        SELECT s.id, s.practitioner_id, s.start_time, s.end_time, 'available'::text, s.version
          FROM availability_slots s
         WHERE practitioner_id = p_practitioner_id AND status = 'available'
           AND start_time >= v_from AND start_time < v_to
           AND start_time > v_now
         ORDER BY start_time;
END
$$;

COMMENT ON FUNCTION booking_api.list_available_slots(bigint, bigint, date, text, integer) IS
    'Available, not yet started slots of a practitioner: those starting on local date p_date in p_time_zone '
    '(default: the practitioner''s zone), or without p_date the next p_limit (1-500). Errors: MB401, MB404, MB400.';
REVOKE ALL ON FUNCTION booking_api.list_available_slots(bigint, bigint, date, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.list_available_slots(bigint, bigint, date, text, integer) TO medbook_api;
