-- Back to 0017: the commit-time consistency checks probe with EXISTS.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

SET LOCAL ROLE medbook_owner;

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

CREATE OR REPLACE FUNCTION booking.booking_assert_appointment_slots_consistent() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Deferred to commit, for every appointment row a transaction inserted or
   whose status or slot it changed: the slot it holds, and on an update the
   slot it held (ON DELETE SET NULL moves a cancelled appointment off its
   slot), each agree with the appointments holding them (booked, completed or
   no_show). One probe of appointments_one_holder_per_slot per slot, since this
   runs once per booking and once per cancellation. SECURITY DEFINER as
   booking_assert_slot_status_consistent(); it only reads. */
DECLARE
    v_slot_id bigint;
BEGIN
    FOREACH v_slot_id IN ARRAY ARRAY[CASE WHEN TG_OP = 'UPDATE' THEN OLD.slot_id END, NEW.slot_id] LOOP
        IF v_slot_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM availability_slots s
                 WHERE s.id = v_slot_id
                   AND (s.status = 'booked') IS DISTINCT FROM EXISTS (
                       SELECT 1 FROM appointments a WHERE a.slot_id = s.id AND a.status <> 'cancelled')) THEN
            RAISE EXCEPTION 'slot %''s status disagrees with its holding appointments', v_slot_id
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'availability_slots_booking_consistency',
                      HINT = 'Book and cancel through book_slot() and cancel_appointment().';
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

RESET ROLE;
