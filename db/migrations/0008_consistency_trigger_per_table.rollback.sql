-- Back to the one consistency trigger function that served both tables.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
SET LOCAL ROLE medbook_owner;

CREATE FUNCTION booking.booking_assert_slot_consistent() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Deferred to commit: a slot is 'booked' exactly when it has a booked appointment.
   Fired for every slot row and appointment row a transaction wrote; an
   appointment that moved off a slot (ON DELETE SET NULL) checks both sides.
   Each check is one probe of appointments_one_booked_per_slot (which also
   rules out a second booked appointment), kept this small because it runs
   twice per booking and twice per cancellation.
   SECURITY DEFINER because before PostgreSQL 17 a deferred trigger runs as the
   role current at COMMIT (medbook_api, which cannot read the tables), not as
   the booking function that queued it. It only reads. */
DECLARE
    v_slot_id bigint;
BEGIN
    IF TG_TABLE_NAME = 'availability_slots' THEN
        IF (NEW.status = 'booked') IS DISTINCT FROM EXISTS (
                SELECT 1 FROM appointments a WHERE a.slot_id = NEW.id AND a.status = 'booked') THEN
            RAISE EXCEPTION 'slot % has status % and a booked appointment count that disagrees', NEW.id, NEW.status
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'availability_slots_booking_consistency',
                      HINT = 'Book and cancel through book_slot() and cancel_appointment().';
        END IF;
        RETURN NULL;
    END IF;

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

REVOKE ALL ON FUNCTION booking.booking_assert_slot_consistent() FROM PUBLIC;

DROP TRIGGER availability_slots_booking_consistency ON booking.availability_slots;
CREATE CONSTRAINT TRIGGER availability_slots_booking_consistency
    AFTER INSERT OR UPDATE OF status ON booking.availability_slots
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION booking.booking_assert_slot_consistent();

DROP TRIGGER appointments_booking_consistency ON booking.appointments;
CREATE CONSTRAINT TRIGGER appointments_booking_consistency
    AFTER INSERT OR UPDATE OF status, slot_id ON booking.appointments
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION booking.booking_assert_slot_consistent();

DROP FUNCTION booking.booking_assert_slot_status_consistent();
DROP FUNCTION booking.booking_assert_appointment_slots_consistent();

RESET ROLE;
