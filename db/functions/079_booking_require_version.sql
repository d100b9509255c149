/* Why: optimistic concurrency. A client that read a slot or the settings got
   their version as a strong ETag; sending it back in If-Match makes the change
   conditional: if the row has changed since (another tab, a booking), the
   change is refused with MBP01 (HTTP 412) and the client reads it again. The
   callers check again under the row lock, so the check is atomic with the write. */
CREATE OR REPLACE FUNCTION booking.booking_require_version(
    p_current  bigint,
    p_if_match bigint[],
    p_detail   text
)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    IF p_if_match IS NOT NULL AND NOT coalesce(p_current = ANY (p_if_match), false) THEN
        RAISE EXCEPTION 'the resource has changed since it was read'
            USING ERRCODE = 'MBP01',
                  DETAIL = format('%s version=%s', p_detail, p_current),
                  HINT = 'Read it again and retry with its current ETag.';
    END IF;
END
$$;

COMMENT ON FUNCTION booking.booking_require_version(bigint, bigint[], text) IS
    'Raises MBP01 precondition_failed unless p_if_match is NULL or contains p_current. Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_require_version(bigint, bigint[], text) FROM PUBLIC;
