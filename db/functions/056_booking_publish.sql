/* Why: turns a practitioner's weekly rules into slots, the same way for the
   practitioner (publish_schedule) and for the nightly run over everyone
   (publish_all_schedules). The rules describe, for every local date from
   today through p_through and every rule valid on that date and weekday,
   wall-clock starts local_start, local_start + slot_minutes, ... while the
   slot ends by local_end. Each start becomes the first instant that wall
   clock shows in the practitioner's zone (booking_local_instant), so 09:00
   stays 09:00 across daylight-saving changes, a start inside the
   spring-forward gap is skipped and one inside the autumn repeat is
   published once, at its first instant. A slot lasts slot_minutes of real
   time.

   A described slot is created unless it has started, starts more than two
   years ahead, overlaps time off, overlaps an existing slot, or overlaps a
   slot published earlier in the same run (possible only next to a
   spring-forward gap); each of those is counted as skipped, never an error,
   and existing slots are never touched. So publishing is idempotent:
   created + skipped always equals the slots the rules describe, and a second
   run over the same dates creates nothing. Takes the practitioner's
   exclusive lock (006) like create_slot(), so it never races a move, a
   booking or time off of the same practitioner. */
CREATE OR REPLACE FUNCTION booking.booking_publish(
    p_practitioner_id bigint,
    p_through         date
)
RETURNS TABLE (created integer, skipped integer)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_now       timestamptz := booking_api.booking_now();
    v_time_zone text := booking_time_zone(p_practitioner_id);
    v_today     date;
    v_described integer;
BEGIN
    v_today := (v_now AT TIME ZONE v_time_zone)::date;
    IF p_through IS NULL THEN
        RAISE EXCEPTION 'through is required'
            USING ERRCODE = 'MB400', HINT = 'Give the last local date to publish, as YYYY-MM-DD.';
    END IF;
    IF p_through < v_today OR p_through > ((v_now + interval '2 years') AT TIME ZONE v_time_zone)::date THEN
        RAISE EXCEPTION 'through must be a local date from today to two years ahead'
            USING ERRCODE = 'MBS05',
                  DETAIL = format('practitioner_id=%s through=%s today=%s', p_practitioner_id, p_through, v_today),
                  HINT = 'Publish at most two years ahead.';
    END IF;
    PERFORM booking_lock_practitioner(p_practitioner_id, true);  -- see 006_booking_lock_practitioner.sql

    WITH wanted AS MATERIALIZED (
        SELECT booking_local_instant(d.day + r.local_start + k.n * r.slot_minutes * interval '1 minute',
                                     v_time_zone) AS start_time,
               r.slot_minutes * interval '1 minute' AS length
          FROM (SELECT g::date AS day FROM generate_series(v_today, p_through, interval '1 day') g) d
          JOIN schedule_rules r
            ON r.practitioner_id = p_practitioner_id
           AND r.weekday = extract(isodow FROM d.day)
           AND d.day >= coalesce(r.valid_from, d.day) AND d.day <= coalesce(r.valid_until, d.day)
         CROSS JOIN LATERAL generate_series(
               0, (extract(epoch FROM r.local_end - r.local_start)::integer / 60) / r.slot_minutes - 1) AS k(n)
    ), inserted AS (
        INSERT INTO availability_slots (practitioner_id, start_time, end_time, created_at, updated_at)
        SELECT p_practitioner_id, w.start_time, w.start_time + w.length, v_now, v_now
          FROM wanted w
         WHERE w.start_time > v_now
           AND w.start_time <= v_now + interval '2 years'
           AND NOT EXISTS (
                 SELECT 1 FROM time_off_periods t
                  WHERE t.practitioner_id = p_practitioner_id
                    AND tstzrange(t.start_time, t.end_time) && tstzrange(w.start_time, w.start_time + w.length))
           AND NOT EXISTS (
                 SELECT 1 FROM availability_slots s
                  WHERE s.practitioner_id = p_practitioner_id
                    AND tstzrange(s.start_time, s.end_time) && tstzrange(w.start_time, w.start_time + w.length))
         ORDER BY w.start_time
        ON CONFLICT DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM wanted), (SELECT count(*) FROM inserted) INTO v_described, created;
    skipped := v_described - created;
    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION booking.booking_publish(bigint, date) IS
    'Creates the slots a practitioner''s schedule rules describe from today through local date p_through, '
    'skipping (and counting) the ones that have started, overlap a slot or time off, or lie beyond two years. '
    'No permission check: callers check first. Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_publish(bigint, date) FROM PUBLIC;
