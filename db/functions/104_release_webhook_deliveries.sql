/* Why: a worker that stops (SIGTERM) or whose lease is running short hands
   its unsent deliveries back at once, instead of making the others wait for
   the lease to run out. */
CREATE OR REPLACE FUNCTION booking_api.release_webhook_deliveries(p_lease_token uuid)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_released integer;
BEGIN
    UPDATE webhook_deliveries SET leased_until = NULL, lease_token = NULL
     WHERE lease_token = p_lease_token AND status = 'pending';
    GET DIAGNOSTICS v_released = ROW_COUNT;
    RETURN v_released;
END
$$;

COMMENT ON FUNCTION booking_api.release_webhook_deliveries(uuid) IS
    'Gives back the pending deliveries of a lease (so another worker may claim them now); returns how many. '
    'For the delivery worker.';
REVOKE ALL ON FUNCTION booking_api.release_webhook_deliveries(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.release_webhook_deliveries(uuid) TO medbook_webhooks;
