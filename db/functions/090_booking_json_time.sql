/* Why: event payloads must equal the REST JSON byte for byte in meaning, and
   the API writes instants as Python's datetime.isoformat() in UTC:
   2027-03-01T09:00:00+00:00, with .ffffff only when there are microseconds.
   to_jsonb() would write the session's time zone and trim trailing zeros,
   so the payload functions (091, 092) format instants here instead.
   PL/pgSQL rather than SQL: a SQL function that cannot be inlined (it pins
   search_path) is planned again on every call, and these run once per event
   inside every booking (about 23 us per appointment payload in SQL, 7 in
   PL/pgSQL). */
CREATE OR REPLACE FUNCTION booking.booking_json_time(p_at timestamptz)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    -- Always UTC, so the session's TimeZone cannot change the text.
    RETURN replace(to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '.000000', '') || '+00:00';
END
$$;

COMMENT ON FUNCTION booking.booking_json_time(timestamptz) IS
    'An instant as the API writes it (RFC 3339 in UTC, +00:00, microseconds only when present); NULL stays NULL.';
REVOKE ALL ON FUNCTION booking.booking_json_time(timestamptz) FROM PUBLIC;
