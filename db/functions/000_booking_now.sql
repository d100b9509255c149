/* Why: every rule that depends on time (past slots, the cancellation window,
   "upcoming") reads the clock here, so tests can move it deterministically
   through booking_clock. Only medbook_owner can write booking_clock, so a
   client of the API or another service cannot fake the time. */
CREATE OR REPLACE FUNCTION booking_api.booking_now()
RETURNS timestamptz
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
    SELECT coalesce((SELECT frozen_at FROM booking_clock WHERE id), now());
$$;

COMMENT ON FUNCTION booking_api.booking_now() IS
    'The booking rules'' notion of now: now(), unless the owner froze the test clock in booking_clock.';
REVOKE ALL ON FUNCTION booking_api.booking_now() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.booking_now() TO medbook_api, medbook_reporting;
