/* Why: booking_api.create_slot() and booking_api.update_slot() accept the same ranges. A slot ends
   after it starts, lasts at most 24 hours, starts in the future, and starts
   within two years (the booking horizon). */
CREATE OR REPLACE FUNCTION booking.booking_validate_slot_times(
    p_start_time timestamptz,
    p_end_time   timestamptz,
    p_now        timestamptz
)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    IF p_start_time IS NULL OR p_end_time IS NULL THEN
        RAISE EXCEPTION 'start_time and end_time are required'
            USING ERRCODE = 'MB400', HINT = 'Give both times with a UTC offset.';
    END IF;
    IF p_end_time <= p_start_time THEN
        RAISE EXCEPTION 'end_time must be after start_time'
            USING ERRCODE = 'MBS05',
                  DETAIL = format('start_time=%s end_time=%s', p_start_time, p_end_time),
                  HINT = 'Give an end_time later than start_time.';
    END IF;
    IF p_end_time - p_start_time > interval '24 hours' THEN
        RAISE EXCEPTION 'a slot lasts at most 24 hours'
            USING ERRCODE = 'MBS05',
                  DETAIL = format('start_time=%s end_time=%s', p_start_time, p_end_time),
                  HINT = 'Split long availability into several slots.';
    END IF;
    IF p_start_time <= p_now THEN
        RAISE EXCEPTION 'a slot cannot start in the past'
            USING ERRCODE = 'MBS04',
                  DETAIL = format('start_time=%s now=%s', p_start_time, p_now),
                  HINT = 'Choose a start_time in the future.';
    END IF;
    IF p_start_time > p_now + interval '2 years' THEN
        RAISE EXCEPTION 'a slot must start within two years'
            USING ERRCODE = 'MBS05',
                  DETAIL = format('start_time=%s now=%s', p_start_time, p_now),
                  HINT = 'Publish slots at most two years ahead.';
    END IF;
END
$$;

COMMENT ON FUNCTION booking.booking_validate_slot_times(timestamptz, timestamptz, timestamptz) IS
    'Raises MB400, MBS05 (invalid_time_range) or MBS04 (slot_in_past) for an unacceptable slot range. Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_validate_slot_times(timestamptz, timestamptz, timestamptz) FROM PUBLIC;
