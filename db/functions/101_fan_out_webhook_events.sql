/* Why: turns new events into one pending delivery per matching subscription,
   so each subscription has its own queue in event order. Reads only events
   below booking_events_horizon() (093), so the cursor in webhook_dispatch
   never passes an event that can still commit (the same guarantee
   read_booking_events() gives). One worker fans out at a time: the others
   skip the locked cursor row (SKIP LOCKED) instead of queueing behind it.
   The horizon is read first; the INSERT's later snapshot sees every event
   below it, since those had ended before the first snapshot. Returns how
   many events it consumed (at most p_limit: call again while it returns
   p_limit). */
CREATE OR REPLACE FUNCTION booking_api.fan_out_webhook_events(p_limit integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_cursor  bigint;
    v_horizon bigint := booking_events_horizon();
    v_last    bigint;
    v_count   integer;
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 100000' USING ERRCODE = 'MB400';
    END IF;
    SELECT last_event_id INTO v_cursor FROM webhook_dispatch FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    SELECT max(id), count(*) INTO v_last, v_count
      FROM (SELECT e.id FROM events e WHERE e.id > v_cursor AND e.id < v_horizon ORDER BY e.id LIMIT p_limit) batch;
    IF v_count = 0 THEN
        RETURN 0;
    END IF;
    INSERT INTO webhook_deliveries (subscription_id, event_id, next_attempt_at)
    SELECT s.id, e.id, now()
      FROM events e
      JOIN webhook_subscriptions s
        ON s.enabled AND e.id >= s.starts_at_event_id
       AND (s.event_types IS NULL OR e.type = ANY (s.event_types))
     WHERE e.id > v_cursor AND e.id <= v_last
     ORDER BY e.id, s.id
    ON CONFLICT ON CONSTRAINT webhook_deliveries_once DO NOTHING;
    UPDATE webhook_dispatch SET last_event_id = v_last, updated_at = now();
    RETURN v_count;
END
$$;

COMMENT ON FUNCTION booking_api.fan_out_webhook_events(integer) IS
    'Queues a delivery per enabled matching subscription for up to p_limit new final events; returns how many '
    'events it consumed (0 while another worker fans out). For the delivery worker. Errors: MB400.';
REVOKE ALL ON FUNCTION booking_api.fan_out_webhook_events(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.fan_out_webhook_events(integer) TO medbook_webhooks;
