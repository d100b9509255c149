/* Why: "available on a local date" is asked by the directory for one
   practitioner at a time: is there an available slot that has not started
   and starts on that date, read in p_time_zone (already validated) or, when
   NULL, in the practitioner's own zone. One probe of
   availability_slots_available_by_start within that day. */
CREATE OR REPLACE FUNCTION booking.booking_available_on(
    p_practitioner_id bigint,
    p_date            date,
    p_time_zone       text,
    p_now             timestamptz
)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
    SELECT EXISTS (
        SELECT 1
          FROM (SELECT coalesce(p_time_zone,
                                (SELECT b.time_zone FROM practitioner_booking_settings b
                                  WHERE b.practitioner_id = p_practitioner_id),
                                'UTC') AS zone) z,
               availability_slots s
         WHERE s.practitioner_id = p_practitioner_id AND s.status = 'available'
           AND s.start_time > p_now
           AND s.start_time >= p_date::timestamp AT TIME ZONE z.zone
           AND s.start_time < (p_date + 1)::timestamp AT TIME ZONE z.zone);
$$;

COMMENT ON FUNCTION booking.booking_available_on(bigint, date, text, timestamptz) IS
    'Whether the practitioner has an available slot starting after p_now on local date p_date (in p_time_zone, '
    'else their own zone). Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_available_on(bigint, date, text, timestamptz) FROM PUBLIC;
