/* Why: a calendar feed token is checked by comparing hashes. bytea = stops at
   the first differing byte; this always looks at every byte, so the time it
   takes says nothing about how much of a guess was right. (The compared
   values are SHA-256 hashes of the token, which already makes a prefix
   oracle useless; this closes it anyway.) */
CREATE OR REPLACE FUNCTION booking.booking_constant_time_equal(p_a bytea, p_b bytea)
RETURNS boolean
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_diff integer := 0;
BEGIN
    IF p_a IS NULL OR p_b IS NULL OR octet_length(p_a) <> octet_length(p_b) THEN
        RETURN false;
    END IF;
    FOR i IN 0 .. octet_length(p_a) - 1 LOOP
        v_diff := v_diff | (get_byte(p_a, i) # get_byte(p_b, i));
    END LOOP;
    RETURN v_diff = 0;
END
$$;

COMMENT ON FUNCTION booking.booking_constant_time_equal(bytea, bytea) IS
    'True when both byte strings are equal, comparing every byte whatever the first difference. Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_constant_time_equal(bytea, bytea) FROM PUBLIC;
