/* Why: a practitioner's slots share one exclusion constraint
   (availability_slots_no_overlap). Any UPDATE of a slot row that is not a HOT
   update -- a status change always is not, because status is in the predicate
   of availability_slots_available_by_start -- inserts a new GiST entry and
   re-checks the constraint. If two transactions each write a slot row whose
   new version overlaps the other's uncommitted version (for example one moves
   slot A onto slot B while another books or cancels B), each waits for the
   other inside the exclusion check: a deadlock. Found by the concurrency
   torture test (tests/torture.py).

   So every write to a practitioner's slots first takes this transaction-level
   advisory lock on the practitioner: shared for book and cancel (which only
   flip status and never conflict with each other on the constraint), exclusive
   for create and update (which change the ranges the constraint compares).
   It is always the first lock a booking function takes, so the lock order is
   advisory lock, then rows: no cycle. Bookings of different slots still run in
   parallel; a slot being created or moved briefly holds up that practitioner's
   bookings only. The key is (a constant class, hash of the practitioner id):
   a hash collision can only serialise two practitioners, never break a rule. */
CREATE OR REPLACE FUNCTION booking.booking_lock_practitioner(
    p_practitioner_id bigint,
    p_exclusive       boolean
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    IF p_exclusive THEN
        PERFORM pg_advisory_xact_lock(1296192363, hashint8(p_practitioner_id));
    ELSE
        PERFORM pg_advisory_xact_lock_shared(1296192363, hashint8(p_practitioner_id));
    END IF;
END
$$;

COMMENT ON FUNCTION booking.booking_lock_practitioner(bigint, boolean) IS
    'Takes the transaction-level advisory lock that orders writes to one practitioner''s slots '
    '(shared: book, cancel; exclusive: create, update). Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_lock_practitioner(bigint, boolean) FROM PUBLIC;
