-- squawk-ignore-file ban-drop-column
-- Back to 0019: the consistency rule kept by the two deferred constraint
-- triggers (bodies as 0018 left them), the foreign keys, their keys and the
-- generated columns dropped (dropping a column rewrites nothing).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '30min';

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
   or deleted (then there is nothing to check).
   The probe is a scalar subquery, not EXISTS: PostgreSQL may plan a
   correlated EXISTS as a hashed subplan over every holding appointment, and
   does when the table is new and looks empty; PL/pgSQL then keeps that plan
   for the session while the table grows (0018). */
DECLARE
    v_status text;
BEGIN
    SELECT s.status INTO v_status FROM availability_slots s
     WHERE s.id = NEW.id
       AND (s.status = 'booked') IS DISTINCT FROM ((
           SELECT 1 FROM appointments a WHERE a.slot_id = s.id AND a.status <> 'cancelled' LIMIT 1) IS NOT NULL);
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
   booking_assert_slot_status_consistent(); it only reads.
   The probe is a scalar subquery, not EXISTS: PostgreSQL may plan a
   correlated EXISTS as a hashed subplan over every holding appointment, and
   does when the table is new and looks empty; PL/pgSQL then keeps that plan
   for the session while the table grows (0018). */
DECLARE
    v_slot_id bigint;
BEGIN
    FOREACH v_slot_id IN ARRAY ARRAY[CASE WHEN TG_OP = 'UPDATE' THEN OLD.slot_id END, NEW.slot_id] LOOP
        IF v_slot_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM availability_slots s
                 WHERE s.id = v_slot_id
                   AND (s.status = 'booked') IS DISTINCT FROM ((
                       SELECT 1 FROM appointments a WHERE a.slot_id = s.id AND a.status <> 'cancelled' LIMIT 1)
                       IS NOT NULL)) THEN
            RAISE EXCEPTION 'slot %''s status disagrees with its holding appointments', v_slot_id
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'availability_slots_booking_consistency',
                      HINT = 'Book and cancel through book_slot() and cancel_appointment().';
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION booking.booking_assert_slot_status_consistent(),
    booking.booking_assert_appointment_slots_consistent() FROM PUBLIC;

CREATE CONSTRAINT TRIGGER availability_slots_booking_consistency
    AFTER INSERT OR UPDATE OF status ON booking.availability_slots
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION booking.booking_assert_slot_status_consistent();

CREATE CONSTRAINT TRIGGER appointments_booking_consistency
    AFTER INSERT OR UPDATE OF status, slot_id ON booking.appointments
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION booking.booking_assert_appointment_slots_consistent();

ALTER TABLE booking.availability_slots DROP CONSTRAINT availability_slots_booked_has_holder;
ALTER TABLE booking.appointments DROP CONSTRAINT appointments_holder_slot_is_booked;
ALTER TABLE booking.appointments DROP CONSTRAINT appointments_slot_holder_key;
ALTER TABLE booking.availability_slots DROP CONSTRAINT availability_slots_id_held_key;
ALTER TABLE booking.appointments DROP COLUMN holds_slot;
ALTER TABLE booking.availability_slots DROP COLUMN held;

RESET ROLE;
