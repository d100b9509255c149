/* Why: idempotency keys are kept 24 hours and then only take space. A DBA or
   a cron job calls this (as medbook_maintenance, or the owner) every few
   minutes; each call deletes at most p_limit expired rows, oldest first, in its
   own short transaction, skipping rows a request is replacing right now, so
   it never holds up the API. Call it again while it returns p_limit. */
CREATE OR REPLACE FUNCTION booking_api.purge_idempotency_keys(p_limit integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_deleted bigint;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'limit must be positive' USING ERRCODE = 'MB400', DETAIL = format('limit=%s', p_limit);
    END IF;
    WITH expired AS (
        SELECT k.user_id, k.idempotency_key
          FROM idempotency_keys k
         WHERE k.expires_at <= booking_api.booking_now()
         ORDER BY k.expires_at
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    )
    DELETE FROM idempotency_keys k
     USING expired e
     WHERE k.user_id = e.user_id AND k.idempotency_key = e.idempotency_key;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END
$$;

COMMENT ON FUNCTION booking_api.purge_idempotency_keys(integer) IS
    'Deletes up to p_limit idempotency keys whose 24 hours have passed, oldest first; returns how many. '
    'For medbook_maintenance (cron) and DBAs. Errors: MB400.';
REVOKE ALL ON FUNCTION booking_api.purge_idempotency_keys(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.purge_idempotency_keys(integer) TO medbook_maintenance;
