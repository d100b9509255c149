/* Why: listeners should learn of new events without polling tightly. Each
   writing transaction notifies on commit (trigger events_assign_id), but its
   events may become readable only later, when an older transaction ends, and
   the owner may switch that notification off (it serialises notifying
   commits on PostgreSQL's notify lock; docs/PERFORMANCE.md). So a relay (a
   thread of every `medbook webhooks run`) calls this a few times a second: when events below
   the horizon (093) exist after p_after_id, it sends one
   NOTIFY booking_events with the highest such id as payload and returns it;
   otherwise it sends nothing and returns p_after_id. The notification
   therefore says "events up to this id are readable now", never earlier.
   The relay's own transaction writes nothing and has no commit to flush. */
CREATE OR REPLACE FUNCTION booking_api.notify_booking_events(p_after_id bigint)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_last bigint;
BEGIN
    SELECT e.id INTO v_last FROM events e
     WHERE e.id > coalesce(p_after_id, -1) AND e.id < booking_events_horizon()
     ORDER BY e.id DESC LIMIT 1;
    IF v_last IS NULL THEN
        RETURN p_after_id;
    END IF;
    PERFORM pg_notify('booking_events', v_last::text);
    RETURN v_last;
END
$$;

COMMENT ON FUNCTION booking_api.notify_booking_events(bigint) IS
    'Sends NOTIFY booking_events (payload: the highest readable event id) if events after p_after_id are '
    'readable; returns that id, or p_after_id. For the delivery worker''s relay.';
REVOKE ALL ON FUNCTION booking_api.notify_booking_events(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.notify_booking_events(bigint) TO medbook_webhooks;
