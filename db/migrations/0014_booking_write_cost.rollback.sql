-- Brings back appointments_upcoming_by_patient and 0011b's slot check. The
-- index build holds a SHARE lock on booking's appointments table (writes to it
-- wait) for its length; a CONCURRENTLY build would need a transaction of its
-- own, which rollback does not run.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '10min';
SET LOCAL ROLE medbook_owner;

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX appointments_upcoming_by_patient
    ON booking.appointments (patient_id, start_time)
    WHERE status = 'booked';

-- 0011b's commit-time slot check, in two statements.
CREATE OR REPLACE FUNCTION booking.booking_assert_slot_status_consistent() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Deferred to commit, for every slot row a transaction inserted or whose
   status it changed: the slot is 'booked' exactly when an appointment holds
   it (booked, completed or no_show: an attended appointment keeps its slot).
   One probe of appointments_one_holder_per_slot.
   SECURITY DEFINER because before PostgreSQL 17 a deferred trigger runs as the
   role current at COMMIT (medbook_api, which cannot read the tables), not as
   the booking function that queued it. It only reads.
   It judges the slot as it is at commit, read again by id: NEW is the row
   version of the statement that queued the check, which a later statement of
   the same transaction may have replaced (create then book, book then cancel)
   or deleted. */
DECLARE
    v_status text;
BEGIN
    SELECT s.status INTO v_status FROM availability_slots s WHERE s.id = NEW.id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF (v_status = 'booked') IS DISTINCT FROM EXISTS (
            SELECT 1 FROM appointments a WHERE a.slot_id = NEW.id AND a.status <> 'cancelled') THEN
        RAISE EXCEPTION 'slot % has status % and a holding appointment count that disagrees', NEW.id, v_status
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'availability_slots_booking_consistency',
                  HINT = 'Book and cancel through book_slot() and cancel_appointment().';
    END IF;
    RETURN NULL;
END
$$;

RESET ROLE;
