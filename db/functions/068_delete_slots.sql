/* Why: the counterpart of publishing. Rules never delete or move slots, so a
   practitioner withdraws unwanted availability by local date range (their
   own zone, inclusive, at most 366 days): every available slot that starts
   in the range and has not started is deleted; booked ones are kept and
   their ids returned, for the practitioner to cancel first if they mean it
   (so each patient is told). Cancelled appointments of deleted slots keep
   their own copy of the times (slot_id becomes NULL), as with delete_slot().
   The DELETE re-checks status under each row lock, so a booking that commits
   first keeps its slot (and is then listed as booked). It deletes many rows,
   so it takes the practitioner's exclusive lock (006) first: otherwise, while
   it holds some deleted rows and waits for the lock of another, a concurrent
   move onto the time of a row it deleted would wait for it inside the
   exclusion check -- a deadlock. */
CREATE OR REPLACE FUNCTION booking_api.delete_slots(
    p_actor_user_id   bigint,
    p_practitioner_id bigint,
    p_from            date,
    p_to              date
)
RETURNS TABLE (deleted integer, booked_slot_ids bigint[])
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_now       timestamptz := booking_api.booking_now();
    v_time_zone text;
    v_from      timestamptz;
    v_to        timestamptz;
    v_deleted   integer;
    v_booked    bigint[];
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner(p_actor_user_id, p_practitioner_id);
    IF p_from IS NULL OR p_to IS NULL OR p_to < p_from OR p_to - p_from >= 366 THEN
        RAISE EXCEPTION 'from and to must be local dates, from first, at most 366 days apart inclusive'
            USING ERRCODE = 'MB400', DETAIL = format('from=%s to=%s', p_from, p_to),
                  HINT = 'Delete longer periods in several calls.';
    END IF;
    PERFORM booking_lock_practitioner(p_practitioner_id, true);  -- see 006_booking_lock_practitioner.sql
    v_time_zone := booking_time_zone(p_practitioner_id);
    v_from := p_from::timestamp AT TIME ZONE v_time_zone;
    v_to := (p_to + 1)::timestamp AT TIME ZONE v_time_zone;

    WITH removed AS (
        DELETE FROM availability_slots s
         WHERE s.practitioner_id = p_practitioner_id AND s.status = 'available'
           AND s.start_time >= v_from AND s.start_time < v_to AND s.start_time > v_now
        RETURNING 1)
    SELECT count(*) INTO v_deleted FROM removed;
    -- Booked slots, through the appointments holding them (booked or attended; appointments_by_practitioner).
    SELECT coalesce(array_agg(a.slot_id ORDER BY a.start_time), '{}') INTO v_booked
      FROM appointments a
     WHERE a.practitioner_id = p_practitioner_id AND a.status <> 'cancelled'
       AND a.start_time >= v_from AND a.start_time < v_to AND a.start_time > v_now;
    RETURN QUERY SELECT v_deleted, v_booked;
END
$$;

COMMENT ON FUNCTION booking_api.delete_slots(bigint, bigint, date, date) IS
    'Deletes a practitioner''s available, not yet started slots that start between local dates p_from and p_to '
    '(inclusive, at most 366 days, in their zone); returns how many and the ids of the booked ones kept. Acting user '
    'must be that practitioner. Errors: MB401, MB403, MB404, MB400.';
REVOKE ALL ON FUNCTION booking_api.delete_slots(bigint, bigint, date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.delete_slots(bigint, bigint, date, date) TO medbook_api;
