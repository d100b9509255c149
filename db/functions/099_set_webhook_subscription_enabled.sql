/* Why: the owner pauses a subscription (or the worker does, on HTTP 410) and
   resumes it. While disabled, new events are not queued for it and its
   pending deliveries wait; enabling resumes them in order. */
CREATE OR REPLACE FUNCTION booking_api.set_webhook_subscription_enabled(
    p_subscription_id bigint,
    p_enabled         boolean
)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    IF p_enabled IS NULL THEN
        RAISE EXCEPTION 'enabled must be true or false' USING ERRCODE = 'MB400';
    END IF;
    UPDATE webhook_subscriptions
       SET enabled = p_enabled,
           disabled_reason = CASE WHEN p_enabled THEN NULL ELSE 'disabled by the owner' END,
           updated_at = now()
     WHERE id = p_subscription_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook subscription not found'
            USING ERRCODE = 'MB404', DETAIL = format('subscription_id=%s', p_subscription_id);
    END IF;
    RETURN p_enabled;
END
$$;

COMMENT ON FUNCTION booking_api.set_webhook_subscription_enabled(bigint, boolean) IS
    'Disables (pauses) or enables a webhook subscription. Owner only. Errors: MB400, MB404.';
REVOKE ALL ON FUNCTION booking_api.set_webhook_subscription_enabled(bigint, boolean) FROM PUBLIC;
