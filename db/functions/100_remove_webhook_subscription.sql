/* Why: removing a subscription removes its deliveries and their attempts with
   it (ON DELETE CASCADE); disable it instead to keep them. A worker that is
   delivering to it at that moment finishes the one request and finds the
   delivery gone (record_webhook_attempt() returns 'gone'). */
CREATE OR REPLACE FUNCTION booking_api.remove_webhook_subscription(p_subscription_id bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    DELETE FROM webhook_subscriptions WHERE id = p_subscription_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook subscription not found'
            USING ERRCODE = 'MB404', DETAIL = format('subscription_id=%s', p_subscription_id);
    END IF;
END
$$;

COMMENT ON FUNCTION booking_api.remove_webhook_subscription(bigint) IS
    'Deletes a webhook subscription with its deliveries and attempts. Owner only. Errors: MB404.';
REVOKE ALL ON FUNCTION booking_api.remove_webhook_subscription(bigint) FROM PUBLIC;
