/* Why: every attempt is recorded for a DBA, and the outcome decides the
   delivery's state, here rather than in the worker:
     2xx                 delivered;
     410                 failed, and the subscription is disabled (the target is gone);
     anything else, or no response (p_status_code NULL: timeout, refused,
     SSRF refusal)       retried after min(p_retry_cap, p_retry_base * 4^(attempts-1)) times a
                         random factor in [0.5, 1.5) (backoff with jitter), until an attempt
                         fails p_retry_window or more after the first one: then failed.
   Only the holder of the lease changes the delivery; an attempt made after the
   lease was lost (a worker that stalled past it) is still recorded, and the
   answer says so. A delivery that does not succeed releases the rest of its
   lease, so the subscription's later events wait behind it (event order). */
CREATE OR REPLACE FUNCTION booking_api.record_webhook_attempt(
    p_delivery_id  bigint,
    p_lease_token  uuid,
    p_worker       text,
    p_attempted_at timestamptz,
    p_duration_ms  integer,
    p_status_code  integer,
    p_error        text,
    p_retry_base   interval DEFAULT interval '10 seconds',
    p_retry_cap    interval DEFAULT interval '8 hours',
    p_retry_window interval DEFAULT interval '24 hours'
)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_now      timestamptz := clock_timestamp();
    v_delivery webhook_deliveries;
    v_first    timestamptz;
    v_outcome  text;
BEGIN
    SELECT * INTO v_delivery FROM webhook_deliveries WHERE id = p_delivery_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'gone';
    END IF;
    INSERT INTO webhook_attempts (delivery_id, attempted_at, duration_ms, status_code, error, worker)
    VALUES (p_delivery_id, p_attempted_at, greatest(p_duration_ms, 0), p_status_code,
            CASE WHEN p_error IS NULL AND p_status_code IS NULL THEN 'no response' ELSE left(p_error, 1000) END,
            coalesce(p_worker, 'unknown'));
    IF v_delivery.status <> 'pending' OR v_delivery.lease_token IS DISTINCT FROM p_lease_token THEN
        RETURN 'lease_lost';
    END IF;

    v_first := coalesce(v_delivery.first_attempt_at, p_attempted_at);
    IF p_status_code BETWEEN 200 AND 299 THEN
        v_outcome := 'delivered';
    ELSIF p_status_code = 410 THEN
        v_outcome := 'disabled';
    ELSIF v_now - v_first >= p_retry_window THEN
        v_outcome := 'failed';
    ELSE
        v_outcome := 'retry';
    END IF;

    UPDATE webhook_deliveries
       SET status = CASE v_outcome WHEN 'delivered' THEN 'delivered'
                                   WHEN 'retry' THEN 'pending' ELSE 'failed' END,
           attempts = attempts + 1,
           first_attempt_at = v_first,
           last_attempt_at = p_attempted_at,
           last_status_code = p_status_code,
           last_error = left(p_error, 1000),
           next_attempt_at = CASE WHEN v_outcome = 'retry'
                                  THEN v_now + make_interval(secs => least(
                                           extract(epoch FROM p_retry_cap),
                                           extract(epoch FROM p_retry_base) * power(4, least(attempts, 60)))
                                           * (0.5 + random()))
                                  ELSE next_attempt_at END,
           finished_at = CASE WHEN v_outcome = 'retry' THEN NULL ELSE v_now END,
           leased_until = NULL, lease_token = NULL
     WHERE id = p_delivery_id;

    IF v_outcome <> 'delivered' THEN
        UPDATE webhook_deliveries SET leased_until = NULL, lease_token = NULL
         WHERE subscription_id = v_delivery.subscription_id AND status = 'pending' AND lease_token = p_lease_token;
    END IF;
    IF v_outcome = 'disabled' THEN
        UPDATE webhook_subscriptions
           SET enabled = false, updated_at = v_now,
               disabled_reason = format('the target answered 410 Gone at %s (delivery %s)', v_now, p_delivery_id)
         WHERE id = v_delivery.subscription_id;
    END IF;
    RETURN v_outcome;
END
$$;

COMMENT ON FUNCTION booking_api.record_webhook_attempt(bigint, uuid, text, timestamptz, integer, integer, text,
                                                       interval, interval, interval) IS
    'Records one HTTP attempt of a leased delivery and returns the outcome: delivered, retry, failed, disabled '
    '(410: the subscription is disabled), lease_lost or gone. For the delivery worker.';
REVOKE ALL ON FUNCTION booking_api.record_webhook_attempt(bigint, uuid, text, timestamptz, integer, integer, text,
                                                          interval, interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.record_webhook_attempt(bigint, uuid, text, timestamptz, integer, integer, text,
                                                             interval, interval, interval) TO medbook_webhooks;
