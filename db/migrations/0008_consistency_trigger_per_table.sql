-- One consistency trigger function per table.
--
-- booking_assert_slot_consistent() served both availability_slots and
-- appointments and branched on TG_TABLE_NAME; on the slot path it never reads
-- OLD.slot_id, but plpgsql_check (run in CI over every trigger function, for
-- each table it is attached to) cannot know that and reports the record field
-- as missing. One function per table says what each checks, and lets the
-- checker prove both. The rule is unchanged: a slot is 'booked' exactly when
-- one booked appointment holds it, checked at commit.
--
-- The two triggers keep their names and firing order (db/CONVENTIONS.md);
-- PostgreSQL has no CREATE OR REPLACE for a constraint trigger, so each is
-- dropped and created again in this one transaction. That takes a short
-- ACCESS EXCLUSIVE lock on booking's own two tables, never on Medbook's.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
SET LOCAL ROLE medbook_owner;

CREATE FUNCTION booking.booking_assert_slot_status_consistent() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Deferred to commit, for every slot row a transaction inserted or whose
   status it changed: the slot is 'booked' exactly when a booked appointment
   holds it. One probe of appointments_one_booked_per_slot.
   SECURITY DEFINER because before PostgreSQL 17 a deferred trigger runs as the
   role current at COMMIT (medbook_api, which cannot read the tables), not as
   the booking function that queued it. It only reads. */
BEGIN
    IF (NEW.status = 'booked') IS DISTINCT FROM EXISTS (
            SELECT 1 FROM appointments a WHERE a.slot_id = NEW.id AND a.status = 'booked') THEN
        RAISE EXCEPTION 'slot % has status % and a booked appointment count that disagrees', NEW.id, NEW.status
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'availability_slots_booking_consistency',
                  HINT = 'Book and cancel through book_slot() and cancel_appointment().';
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION booking.booking_assert_appointment_slots_consistent() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Deferred to commit, for every appointment row a transaction inserted or
   whose status or slot it changed: the slot it holds, and on an update the
   slot it held (ON DELETE SET NULL moves a cancelled appointment off its
   slot), each agree with their booked appointments. One probe of
   appointments_one_booked_per_slot per slot, since this runs once per booking
   and once per cancellation. SECURITY DEFINER as
   booking_assert_slot_status_consistent(); it only reads. */
DECLARE
    v_slot_id bigint;
BEGIN
    FOREACH v_slot_id IN ARRAY ARRAY[CASE WHEN TG_OP = 'UPDATE' THEN OLD.slot_id END, NEW.slot_id] LOOP
        IF v_slot_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM availability_slots s
                 WHERE s.id = v_slot_id
                   AND (s.status = 'booked') IS DISTINCT FROM EXISTS (
                       SELECT 1 FROM appointments a WHERE a.slot_id = s.id AND a.status = 'booked')) THEN
            RAISE EXCEPTION 'slot %''s status disagrees with its booked appointments', v_slot_id
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

DROP TRIGGER availability_slots_booking_consistency ON booking.availability_slots;
CREATE CONSTRAINT TRIGGER availability_slots_booking_consistency
    AFTER INSERT OR UPDATE OF status ON booking.availability_slots
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION booking.booking_assert_slot_status_consistent();

DROP TRIGGER appointments_booking_consistency ON booking.appointments;
CREATE CONSTRAINT TRIGGER appointments_booking_consistency
    AFTER INSERT OR UPDATE OF status, slot_id ON booking.appointments
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION booking.booking_assert_appointment_slots_consistent();

DROP FUNCTION booking.booking_assert_slot_consistent();

RESET ROLE;
