/* Why: schedules are wall-clock times in the practitioner's zone, and a
   wall-clock time is not always one instant. On the spring-forward day a
   local time inside the gap does not exist; on the autumn day a local time
   inside the repeated hour happens twice. PostgreSQL's own
   `timestamp AT TIME ZONE zone` quietly picks an instant for both (for the
   repeat, the second one), so publishing asks here instead: the candidates
   are the local time read with the offset in force a day before and a day
   after (no real zone changes offset twice in two days), a candidate counts
   only if it reads back as the same wall-clock time, and the earliest wins.
   No candidate: the time does not exist that day (NULL). */
CREATE OR REPLACE FUNCTION booking.booking_local_instant(
    p_local     timestamp,
    p_time_zone text
)
RETURNS timestamptz
LANGUAGE sql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
    SELECT min(c.instant)
      FROM (SELECT (p_local - ((t AT TIME ZONE p_time_zone) - (t AT TIME ZONE 'UTC'))) AT TIME ZONE 'UTC'
                   AS instant
              FROM unnest(ARRAY[(p_local AT TIME ZONE p_time_zone) - interval '1 day',
                                (p_local AT TIME ZONE p_time_zone) + interval '1 day']) AS t) c
     WHERE c.instant AT TIME ZONE p_time_zone = p_local;
$$;

COMMENT ON FUNCTION booking.booking_local_instant(timestamp, text) IS
    'The first instant at which the wall clock in p_time_zone shows p_local; NULL when that local time '
    'does not exist (the spring-forward gap). Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_local_instant(timestamp, text) FROM PUBLIC;
