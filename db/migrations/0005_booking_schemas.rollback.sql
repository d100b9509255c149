-- Moves the booking tables, trigger functions and views back into public, where
-- the previous release expects them. The functions of db/functions/ are
-- dropped; the previous release's `medbook migrate` re-creates them in public.
-- (Rolling back 0002a afterwards drops the then empty schemas.)

SET LOCAL lock_timeout = '5s';

GRANT USAGE, CREATE ON SCHEMA public TO medbook_owner;
GRANT USAGE ON SCHEMA public TO medbook_api, medbook_reporting;

SET LOCAL ROLE medbook_owner;

DO $$
DECLARE
    v_function regprocedure;
    v_type regtype;
BEGIN
    FOR v_function IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace IN ('booking'::regnamespace, 'booking_api'::regnamespace)
           AND p.prorettype <> 'trigger'::regtype
           AND NOT EXISTS (SELECT 1 FROM pg_depend d  -- btree_gist may live in booking
                            WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('DROP FUNCTION %s', v_function);
    END LOOP;
    FOR v_type IN
        SELECT t.oid::regtype FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid
         WHERE t.typnamespace = 'booking_api'::regnamespace AND c.relkind = 'c'
    LOOP
        EXECUTE format('DROP TYPE %s', v_type);
    END LOOP;
END
$$;

ALTER VIEW booking_reporting.reporting_slot_utilisation SET SCHEMA public;
ALTER VIEW booking_reporting.reporting_appointment_counts SET SCHEMA public;

ALTER FUNCTION booking.booking_assert_slot_consistent() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION booking.booking_guard_appointment_change() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION booking.booking_record_history() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION booking.booking_refuse_change() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION booking.booking_assert_slot_consistent() SET SCHEMA public;
ALTER FUNCTION booking.booking_guard_appointment_change() SET SCHEMA public;
ALTER FUNCTION booking.booking_record_history() SET SCHEMA public;
ALTER FUNCTION booking.booking_refuse_change() SET SCHEMA public;

ALTER TABLE booking.time_zones SET SCHEMA public;
ALTER TABLE booking.patients SET SCHEMA public;
ALTER TABLE booking.practitioner_booking_settings SET SCHEMA public;
ALTER TABLE booking.availability_slots SET SCHEMA public;
ALTER TABLE booking.appointments SET SCHEMA public;
ALTER TABLE booking.appointment_history SET SCHEMA public;
ALTER TABLE booking.booking_clock SET SCHEMA public;

RESET ROLE;
