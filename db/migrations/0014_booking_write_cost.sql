-- What one booking writes (docs/PERFORMANCE.md, "What a booking costs"): every
-- index of appointments takes an entry on each booking, and again on each
-- cancellation or attendance (a status change is never a HOT update). An
-- index stays only if a query needs it.
--
--   * appointments_upcoming_by_patient (patient_id, start_time) WHERE status =
--     'booked' is dropped: appointments_by_patient (patient_id, start_time),
--     added by 0009 for a patient's lists of any status, serves "a patient's
--     booked appointments that have not started" with the same index range
--     (the patient, from now on), filtering out the few cancelled or attended
--     ones of that patient. list_upcoming_appointments() plans on it.
--   * the commit-time slot check (availability_slots_booking_consistency, which
--     0011b made read the slot as it is at commit) reads the slot and probes its
--     holding appointment in one statement instead of two; the message and the
--     rule are unchanged.
--
-- DROP INDEX takes a short ACCESS EXCLUSIVE lock on booking's own
-- appointments table (never on Medbook's); the lock_timeout bounds the wait
-- for it and migrate retries. DROP INDEX CONCURRENTLY cannot run inside the
-- transaction migrate gives every migration.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
SET LOCAL ROLE medbook_owner;

-- squawk-ignore require-concurrent-index-deletion
DROP INDEX booking.appointments_upcoming_by_patient;

CREATE OR REPLACE FUNCTION booking.booking_assert_slot_status_consistent() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Deferred to commit, for every slot row a transaction inserted or whose
   status it changed: the slot is 'booked' exactly when an appointment holds
   it (booked, completed or no_show: an attended appointment keeps its slot).
   One statement: the slot by its primary key and one probe of
   appointments_one_holder_per_slot; it finds a row only when they disagree.
   SECURITY DEFINER because before PostgreSQL 17 a deferred trigger runs as the
   role current at COMMIT (medbook_api, which cannot read the tables), not as
   the booking function that queued it. It only reads.
   It judges the slot as it is at commit, read again by id: NEW is the row
   version of the statement that queued the check, which a later statement of
   the same transaction may have replaced (create then book, book then cancel)
   or deleted (then there is nothing to check). */
DECLARE
    v_status text;
BEGIN
    SELECT s.status INTO v_status FROM availability_slots s
     WHERE s.id = NEW.id
       AND (s.status = 'booked') IS DISTINCT FROM EXISTS (
           SELECT 1 FROM appointments a WHERE a.slot_id = s.id AND a.status <> 'cancelled');
    IF FOUND THEN
        RAISE EXCEPTION 'slot % has status % and a holding appointment count that disagrees', NEW.id, v_status
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'availability_slots_booking_consistency',
                  HINT = 'Book and cancel through book_slot() and cancel_appointment().';
    END IF;
    RETURN NULL;
END
$$;

RESET ROLE;
