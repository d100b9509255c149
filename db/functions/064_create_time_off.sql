/* Why: a practitioner marks time away (holiday, training, illness). In the
   same transaction the available slots it overlaps that have not started are
   deleted, so nobody can book them; booked ones are kept and their ids
   returned: the practitioner decides whether to cancel those appointments
   (cancel_appointment), so each patient is told. Publishing skips time off
   from then on; deleting the time off later recreates nothing (publish
   again). Time off ends after it starts, ends in the future and starts at
   most two years ahead (MBS05); time off may overlap other time off. Takes
   the practitioner's exclusive lock (006), so a booking in flight finishes
   first (and its slot is then reported as booked) and a concurrent publish
   sees the time off or runs entirely before it. */
CREATE OR REPLACE FUNCTION booking_api.create_time_off(
    p_actor_user_id   bigint,
    p_practitioner_id bigint,
    p_start_time      timestamptz,
    p_end_time        timestamptz,
    p_reason          text DEFAULT NULL
)
RETURNS TABLE (id bigint, practitioner_id bigint, start_time timestamptz, end_time timestamptz, reason text,
               removed_slots integer, booked_slot_ids bigint[])
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_now      timestamptz := booking_api.booking_now();
    v_time_off time_off_periods;
    v_removed  integer;
    v_booked   bigint[];
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner(p_actor_user_id, p_practitioner_id);
    IF p_start_time IS NULL OR p_end_time IS NULL THEN
        RAISE EXCEPTION 'start_time and end_time are required'
            USING ERRCODE = 'MB400', HINT = 'Give both times with a UTC offset.';
    END IF;
    IF char_length(p_reason) > 1000 THEN
        RAISE EXCEPTION 'the reason is longer than 1000 characters'
            USING ERRCODE = 'MB400', HINT = 'Shorten the reason.';
    END IF;
    IF p_end_time <= p_start_time OR p_end_time <= v_now OR p_start_time > v_now + interval '2 years' THEN
        RAISE EXCEPTION 'time off must end after it starts, end in the future and start within two years'
            USING ERRCODE = 'MBS05',
                  DETAIL = format('start_time=%s end_time=%s now=%s', p_start_time, p_end_time, v_now),
                  HINT = 'Give a later end_time or an earlier start_time.';
    END IF;
    PERFORM booking_lock_practitioner(p_practitioner_id, true);  -- see 006_booking_lock_practitioner.sql

    INSERT INTO time_off_periods (practitioner_id, start_time, end_time, reason, created_at)
    VALUES (p_practitioner_id, p_start_time, p_end_time, nullif(btrim(p_reason), ''), v_now)
    RETURNING * INTO v_time_off;
    WITH removed AS (
        DELETE FROM availability_slots s
         WHERE s.practitioner_id = p_practitioner_id AND s.status = 'available'
           AND s.start_time > v_now
           AND tstzrange(s.start_time, s.end_time) && tstzrange(p_start_time, p_end_time)
        RETURNING 1)
    SELECT count(*) INTO v_removed FROM removed;
    -- Booked slots, through the appointments holding them (booked or attended; appointments_by_practitioner).
    SELECT coalesce(array_agg(a.slot_id ORDER BY a.start_time), '{}') INTO v_booked
      FROM appointments a
     WHERE a.practitioner_id = p_practitioner_id AND a.status <> 'cancelled'
       AND a.start_time > v_now AND a.start_time < p_end_time AND a.end_time > p_start_time;

    RETURN QUERY SELECT v_time_off.id, v_time_off.practitioner_id, v_time_off.start_time, v_time_off.end_time,
                        v_time_off.reason, v_removed, v_booked;
END
$$;

COMMENT ON FUNCTION booking_api.create_time_off(bigint, bigint, timestamptz, timestamptz, text) IS
    'Records time off for a practitioner, deletes the available future slots it overlaps and lists the booked ones '
    '(booked_slot_ids) for the practitioner to deal with. Acting user must be that practitioner. Errors: MB401, '
    'MB403, MB404, MB400, MBS05 invalid_time_range.';
REVOKE ALL ON FUNCTION booking_api.create_time_off(bigint, bigint, timestamptz, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.create_time_off(bigint, bigint, timestamptz, timestamptz, text) TO medbook_api;
