/* Why: a new consumer usually wants what happens from now on, not the whole
   retained history. This is the cursor to start from: every event at or
   below it is final, so reading after it misses nothing that is still to
   come. */
CREATE OR REPLACE FUNCTION booking_api.booking_events_start()
RETURNS bigint
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
    SELECT booking_events_horizon() - 1
$$;

COMMENT ON FUNCTION booking_api.booking_events_start() IS
    'A cursor for read_booking_events() that skips the history: the events after it are those not yet final now.';
REVOKE ALL ON FUNCTION booking_api.booking_events_start() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.booking_events_start() TO medbook_events;
