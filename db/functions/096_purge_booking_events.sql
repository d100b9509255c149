/* Why: the event log grows with every change; retention is the owner's
   choice. Deletes events that occurred before booking_now() - p_older_than,
   except those a webhook delivery still waits for (pending): deliveries and
   their attempts of the purged events go with them (ON DELETE CASCADE).
   A consumer whose cursor is older than the retention misses what was
   purged; keep the age well above the slowest consumer's lag. Deletes in
   batches of p_batch so a large purge does not hold one long transaction's
   locks; call it again until it returns less than p_batch. */
CREATE OR REPLACE FUNCTION booking_api.purge_booking_events(
    p_older_than interval,
    p_batch      integer DEFAULT 10000
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_deleted bigint;
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' OR p_batch IS NULL OR p_batch < 1 THEN
        RAISE EXCEPTION 'the age must be a positive interval and the batch at least 1'
            USING ERRCODE = 'MB400', DETAIL = format('older_than=%s batch=%s', p_older_than, p_batch),
                  HINT = 'For example: SELECT booking_api.purge_booking_events(interval ''90 days'');';
    END IF;
    DELETE FROM events e
     WHERE e.id IN (
        SELECT o.id FROM events o
         WHERE o.occurred_at < booking_api.booking_now() - p_older_than
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = o.id AND d.status = 'pending')
         ORDER BY o.occurred_at
         LIMIT p_batch);
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END
$$;

COMMENT ON FUNCTION booking_api.purge_booking_events(interval, integer) IS
    'Deletes up to p_batch events older than p_older_than (with their finished webhook deliveries and attempts); '
    'returns how many. Owner only. Errors: MB400.';
REVOKE ALL ON FUNCTION booking_api.purge_booking_events(interval, integer) FROM PUBLIC;
