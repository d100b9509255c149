/* Why: booking and rescheduling claim a slot the same way, so the claim lives
   once. How two simultaneous claims of one slot end with exactly one winner:

   The claim is one statement, UPDATE ... SET status = 'booked' WHERE id = slot
   AND status = 'available' AND start_time > now. It takes the slot's row lock.
   A concurrent claimer's UPDATE blocks on that lock; when the winner commits,
   READ COMMITTED re-evaluates the WHERE clause against the committed row
   (status is now 'booked'), so the loser updates nothing and gets MBS01
   slot_unavailable. If the winner rolls back instead, the waiter sees
   'available' and wins. A caller running REPEATABLE READ or SERIALIZABLE gets a
   serialization failure from the blocked UPDATE instead; it is caught and
   reported as slot_unavailable. The caller takes the practitioner's shared
   advisory lock first (006_booking_lock_practitioner.sql). */
CREATE OR REPLACE FUNCTION booking.booking_claim_slot(
    p_slot_id bigint,
    p_now     timestamptz
)
RETURNS booking.availability_slots
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_slot availability_slots;
BEGIN
    IF current_setting('transaction_isolation') = 'read committed' THEN
        UPDATE availability_slots SET status = 'booked', updated_at = p_now
         WHERE id = p_slot_id AND status = 'available' AND start_time > p_now
        RETURNING * INTO v_slot;
    ELSE
        BEGIN
            UPDATE availability_slots SET status = 'booked', updated_at = p_now
             WHERE id = p_slot_id AND status = 'available' AND start_time > p_now
            RETURNING * INTO v_slot;
        EXCEPTION WHEN serialization_failure THEN
            v_slot := NULL;
        END;
    END IF;

    IF v_slot.id IS NULL THEN
        SELECT * INTO v_slot FROM availability_slots WHERE id = p_slot_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'slot not found' USING ERRCODE = 'MB404', DETAIL = format('slot_id=%s', p_slot_id);
        ELSIF v_slot.start_time <= p_now THEN
            RAISE EXCEPTION 'the slot has already started'
                USING ERRCODE = 'MBS04', DETAIL = format('slot_id=%s', p_slot_id),
                      HINT = 'Choose a slot in the future.';
        END IF;
        RAISE EXCEPTION 'the slot is no longer available'
            USING ERRCODE = 'MBS01', DETAIL = format('slot_id=%s', p_slot_id),
                  HINT = 'Choose another slot.';
    END IF;
    RETURN v_slot;
END
$$;

COMMENT ON FUNCTION booking.booking_claim_slot(bigint, timestamptz) IS
    'Marks an available, not yet started slot booked and returns it; exactly one of concurrent claimers wins. '
    'Raises MB404, MBS04 slot_in_past or MBS01 slot_unavailable. Internal helper of book_slot() and '
    'reschedule_appointment().';
REVOKE ALL ON FUNCTION booking.booking_claim_slot(bigint, timestamptz) FROM PUBLIC;
