/* Why: the inverse of booking_cursor_encode(), and the only way a cursor
   comes back in. Anything but an unaltered cursor of this very listing --
   wrong alphabet or length, a flipped bit, a cursor of another practitioner
   or filter, a position made up by hand -- is MBC01 (invalid_cursor). The MAC
   is compared through sha256() so the comparison leaks no timing about how
   many leading bytes matched. */
CREATE OR REPLACE FUNCTION booking.booking_cursor_decode(
    p_scope  jsonb,
    p_cursor text
)
RETURNS TABLE (after_time timestamptz, after_id bigint)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_raw      bytea;
    v_position bytea;
    v_micros   bigint;
BEGIN
    IF p_cursor IS NULL OR p_cursor !~ '^[A-Za-z0-9_-]{44}$' THEN
        RAISE EXCEPTION 'the cursor is not valid for this listing'
            USING ERRCODE = 'MBC01',
                  HINT = 'Pass next_cursor exactly as received, with the same filters, or start without a cursor.';
    END IF;
    v_raw := decode(translate(p_cursor, '-_', '+/'), 'base64');
    v_position := substring(v_raw FROM 1 FOR 17);
    IF sha256(substring(v_raw FROM 18 FOR 16))
       <> sha256(substring(booking_hmac(convert_to(p_scope::text, 'UTF8') || v_position) FROM 1 FOR 16)) THEN
        RAISE EXCEPTION 'the cursor is not valid for this listing'
            USING ERRCODE = 'MBC01',
                  HINT = 'Pass next_cursor exactly as received, with the same filters, or start without a cursor.';
    END IF;
    v_micros := ('x' || encode(substring(v_position FROM 2 FOR 8), 'hex'))::bit(64)::bigint;
    after_time := CASE get_byte(v_position, 0)
                      WHEN 0 THEN timestamptz 'epoch' + v_micros * interval '1 microsecond' END;
    after_id := ('x' || encode(substring(v_position FROM 10 FOR 8), 'hex'))::bit(64)::bigint;
    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION booking.booking_cursor_decode(jsonb, text) IS
    'The position (after_time, after_id) inside a cursor made by booking_cursor_encode() for the same p_scope; '
    'raises MBC01 (invalid_cursor) for anything else. Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_cursor_decode(jsonb, text) FROM PUBLIC;
