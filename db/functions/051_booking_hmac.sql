/* Why: list cursors are signed so that a client can hand one back but not
   forge or alter one. HMAC-SHA-256 (RFC 2104) over PostgreSQL's built-in
   sha256(), so the booking schema needs no extension. The key is the single
   row of cursor_key. */
CREATE OR REPLACE FUNCTION booking.booking_hmac(p_message bytea)
RETURNS bytea
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_key  bytea;
    v_ipad bytea;
    v_opad bytea;
BEGIN
    SELECT k.secret INTO STRICT v_key FROM cursor_key k WHERE k.id;
    IF octet_length(v_key) > 64 THEN
        v_key := sha256(v_key);
    END IF;
    v_key := v_key || decode(repeat('00', 64 - octet_length(v_key)), 'hex');
    v_ipad := v_key;
    v_opad := v_key;
    FOR i IN 0..63 LOOP
        v_ipad := set_byte(v_ipad, i, get_byte(v_key, i) # 54);   -- 0x36
        v_opad := set_byte(v_opad, i, get_byte(v_key, i) # 92);   -- 0x5c
    END LOOP;
    RETURN sha256(v_opad || sha256(v_ipad || p_message));
END
$$;

COMMENT ON FUNCTION booking.booking_hmac(bytea) IS
    'HMAC-SHA-256 of p_message under the secret in cursor_key. Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_hmac(bytea) FROM PUBLIC;
