/* Why: local dates are read in a zone the caller names (validated against
   time_zones, so a typo is a 400, not a PostgreSQL error) or, by default, in
   the practitioner's own booking zone (UTC when never set). One rule, used by
   every function that takes a local date. */
CREATE OR REPLACE FUNCTION booking.booking_time_zone(
    p_practitioner_id bigint,
    p_time_zone       text DEFAULT NULL
)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_time_zone text;
BEGIN
    IF p_time_zone IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM time_zones WHERE name = p_time_zone) THEN
            RAISE EXCEPTION 'unknown time zone'
                USING ERRCODE = 'MB400', DETAIL = format('time_zone=%s', left(p_time_zone, 64)),
                      HINT = 'Use an IANA name such as Europe/London.';
        END IF;
        RETURN p_time_zone;
    END IF;
    SELECT s.time_zone INTO v_time_zone
      FROM practitioner_booking_settings s WHERE s.practitioner_id = p_practitioner_id;
    RETURN coalesce(v_time_zone, 'UTC');
END
$$;

COMMENT ON FUNCTION booking.booking_time_zone(bigint, text) IS
    'p_time_zone if it is a known IANA zone (MB400 otherwise), else the practitioner''s booking zone, else UTC. '
    'Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_time_zone(bigint, text) FROM PUBLIC;
