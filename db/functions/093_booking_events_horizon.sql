/* Why: the heart of the event log's promise, that a cursor never skips an
   event. Event ids are xid * 2^20 + n (migration 0011, trigger
   events_assign_id). Every transaction whose xid is below the snapshot's
   xmin has ended, and every transaction that could still insert an event
   has an xid at or above it; so every id below xmin * 2^20 is final
   (committed and visible to this snapshot, or never to exist), and every id
   an unfinished transaction can still write is at or above it. Readers
   return ids below this horizon only. It lags while an older transaction
   runs (DESIGN.md section 4); it never runs ahead. */
CREATE OR REPLACE FUNCTION booking.booking_events_horizon()
RETURNS bigint
LANGUAGE sql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint * 1048576
$$;

COMMENT ON FUNCTION booking.booking_events_horizon() IS
    'The smallest event id that may still be written by a transaction that has not ended; every lower id is '
    'final for the calling snapshot. Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_events_horizon() FROM PUBLIC;
