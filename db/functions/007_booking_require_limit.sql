/* Why: every list function caps how many rows one call returns (1 to 500). */
CREATE OR REPLACE FUNCTION booking.booking_require_limit(p_limit integer)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 500 THEN
        RAISE EXCEPTION 'limit must be between 1 and 500'
            USING ERRCODE = 'MB400', DETAIL = format('limit=%s', p_limit);
    END IF;
END
$$;

COMMENT ON FUNCTION booking.booking_require_limit(integer) IS
    'Raises MB400 unless p_limit is between 1 and 500. Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_require_limit(integer) FROM PUBLIC;
