/* Why: several workers may run at once, yet no event may be delivered twice
   in parallel, and each subscription gets its events in order. A worker
   claims whole subscriptions: it locks a subscription row with FOR NO KEY
   UPDATE SKIP LOCKED (a concurrent claimer skips it; the fan-out's
   foreign-key checks are not blocked), and only if the subscription's head
   (its oldest pending delivery) is due and not leased, it leases the head
   and the next pending deliveries after it (at most p_batch), in event
   order, until leased_until, under one random lease_token. Nobody else
   claims a leased head, so at most one worker delivers to a subscription at
   a time and never out of order.

   The claim commits at once: no transaction stays open (and no xid holds
   the event horizon back) while the worker talks HTTP. A worker killed
   mid-delivery loses nothing: its lease runs out and another worker claims
   the same deliveries again (at-least-once). A live worker sends only while
   its lease has at least its HTTP timeout left (api/webhooks.py).
   Webhooks run on real time (now()), not on the booking clock. */
CREATE OR REPLACE FUNCTION booking_api.claim_webhook_deliveries(
    p_max_subscriptions integer,
    p_batch             integer,
    p_lease             interval
)
RETURNS TABLE (delivery_id bigint, lease_token uuid, leased_until timestamptz, subscription_id bigint,
               url text, secret text, event_id bigint, event_type text, occurred_at timestamptz,
               payload jsonb, attempt bigint)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_now     timestamptz := clock_timestamp();
    v_token   uuid := gen_random_uuid();
    v_sub     bigint;
    v_head    webhook_deliveries;
    v_claimed bigint[] := ARRAY[]::bigint[];
    v_ids     bigint[];
BEGIN
    IF p_max_subscriptions IS NULL OR p_max_subscriptions < 1 OR p_batch IS NULL OR p_batch < 1
       OR p_lease IS NULL OR p_lease <= interval '0' THEN
        RAISE EXCEPTION 'claim sizes must be at least 1 and the lease positive' USING ERRCODE = 'MB400';
    END IF;
    FOR v_sub IN
        SELECT s.id FROM webhook_subscriptions s
         WHERE s.enabled
           AND EXISTS (SELECT 1 FROM (SELECT d.next_attempt_at, d.leased_until FROM webhook_deliveries d
                                       WHERE d.subscription_id = s.id AND d.status = 'pending'
                                       ORDER BY d.event_id LIMIT 1) h
                        WHERE h.next_attempt_at <= v_now AND (h.leased_until IS NULL OR h.leased_until <= v_now))
         ORDER BY s.id
         LIMIT p_max_subscriptions
           FOR NO KEY UPDATE OF s SKIP LOCKED
    LOOP
        -- Under the subscription's lock, with a fresh snapshot: is the head still free?
        SELECT d.* INTO v_head FROM webhook_deliveries d
         WHERE d.subscription_id = v_sub AND d.status = 'pending'
         ORDER BY d.event_id LIMIT 1;
        CONTINUE WHEN v_head.id IS NULL OR v_head.next_attempt_at > v_now
                   OR (v_head.leased_until IS NOT NULL AND v_head.leased_until > v_now);
        WITH run AS (
            SELECT d.id FROM webhook_deliveries d
             WHERE d.subscription_id = v_sub AND d.status = 'pending'
             ORDER BY d.event_id LIMIT p_batch),
        leased AS (
            UPDATE webhook_deliveries d
               SET leased_until = v_now + p_lease, lease_token = v_token
              FROM run WHERE d.id = run.id
            RETURNING d.id)
        SELECT array_agg(leased.id) INTO v_ids FROM leased;
        v_claimed := v_claimed || v_ids;
    END LOOP;
    RETURN QUERY
        SELECT d.id, d.lease_token, d.leased_until, s.id, s.url, s.secret, e.id, e.type, e.occurred_at,
               e.payload, d.attempts + 1
          FROM webhook_deliveries d
          JOIN webhook_subscriptions s ON s.id = d.subscription_id
          JOIN events e ON e.id = d.event_id
         WHERE d.id = ANY (v_claimed)
         ORDER BY s.id, d.event_id;
END
$$;

COMMENT ON FUNCTION booking_api.claim_webhook_deliveries(integer, integer, interval) IS
    'Leases, for p_lease, the due head and up to p_batch pending deliveries in event order of up to '
    'p_max_subscriptions subscriptions that no other worker holds, and returns what to send (with the secret). '
    'For the delivery worker. Errors: MB400.';
REVOKE ALL ON FUNCTION booking_api.claim_webhook_deliveries(integer, integer, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.claim_webhook_deliveries(integer, integer, interval) TO medbook_webhooks;
