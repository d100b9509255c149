/* Why: lists page by keyset (a position in their sort order, not an offset),
   so rows inserted between two pages neither shift nor repeat what follows.
   The position travels to the client as an opaque cursor: a flag, the sort
   instant (microseconds since the epoch; flagged NULL for "none") and an id,
   followed by the first 16 bytes of an HMAC over the listing's scope (the
   filters that define it) and the position, all in base64url. The scope is
   signed but not sent, so a cursor only resumes the listing it came from. */
CREATE OR REPLACE FUNCTION booking.booking_cursor_encode(
    p_scope jsonb,
    p_time  timestamptz,
    p_id    bigint
)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_position bytea;
BEGIN
    v_position := CASE WHEN p_time IS NULL THEN '\x01'::bytea ELSE '\x00'::bytea END
        || int8send(coalesce((extract(epoch FROM p_time) * 1000000)::bigint, 0))
        || int8send(p_id);
    RETURN translate(encode(v_position || substring(booking_hmac(convert_to(p_scope::text, 'UTF8') || v_position)
                                                    FROM 1 FOR 16), 'base64'), '+/', '-_');
END
$$;

COMMENT ON FUNCTION booking.booking_cursor_encode(jsonb, timestamptz, bigint) IS
    'A signed, opaque cursor for the position (p_time, p_id) of the listing described by p_scope. Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_cursor_encode(jsonb, timestamptz, bigint) FROM PUBLIC;
