/* Why: the owner sees what is subscribed and how its deliveries fare, without
   the secrets (shown once, by add_webhook_subscription()). */
CREATE OR REPLACE FUNCTION booking_api.list_webhook_subscriptions()
RETURNS TABLE (id bigint, url text, event_types text[], enabled boolean, disabled_reason text,
               created_at timestamptz, pending bigint, delivered bigint, failed bigint,
               last_attempt_at timestamptz)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
    SELECT s.id, s.url, s.event_types, s.enabled, s.disabled_reason, s.created_at,
           count(*) FILTER (WHERE d.status = 'pending'),
           count(*) FILTER (WHERE d.status = 'delivered'),
           count(*) FILTER (WHERE d.status = 'failed'),
           max(d.last_attempt_at)
      FROM webhook_subscriptions s
      LEFT JOIN webhook_deliveries d ON d.subscription_id = s.id
     GROUP BY s.id
     ORDER BY s.id
$$;

COMMENT ON FUNCTION booking_api.list_webhook_subscriptions() IS
    'Every webhook subscription (without its secret) with its pending, delivered and failed delivery counts. '
    'Owner only.';
REVOKE ALL ON FUNCTION booking_api.list_webhook_subscriptions() FROM PUBLIC;
