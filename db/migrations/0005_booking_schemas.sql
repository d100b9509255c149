-- Moves the booking feature out of public into its own schemas (created by
-- 0002a): tables, trigger functions and views of a database built before
-- 0002a existed. On a database built since, 0003 and 0004 already created
-- them in the booking schemas and there is nothing to move; a table of the
-- same name in public then belongs to somebody else and stays where it is.
--
-- users and practitioners stay in public, untouched. Moving a table keeps its
-- rows, indexes, constraints, triggers, identity sequences and privileges; the
-- views keep pointing at the moved tables. The old functions of db/functions/
-- are dropped here; `medbook migrate` re-creates them in booking and
-- booking_api, since it re-applies every function file after the migrations.

SET LOCAL lock_timeout = '5s';
SET LOCAL ROLE medbook_owner;

DO $$
DECLARE
    v_function regprocedure;
    v_name     text;
BEGIN
    -- The old function files' functions: owned by medbook_owner, none a trigger.
    FOR v_function IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = 'public'::regnamespace
           AND p.proowner = 'medbook_owner'::regrole
           AND p.prorettype <> 'trigger'::regtype
    LOOP
        EXECUTE format('DROP FUNCTION %s', v_function);
    END LOOP;

    FOREACH v_name IN ARRAY ARRAY['time_zones', 'patients', 'practitioner_booking_settings',
                                  'availability_slots', 'appointments', 'appointment_history',
                                  'booking_clock'] LOOP
        IF to_regclass('booking.' || v_name) IS NULL THEN
            EXECUTE format('ALTER TABLE public.%I SET SCHEMA booking', v_name);
        END IF;
    END LOOP;

    FOREACH v_name IN ARRAY ARRAY['booking_assert_slot_consistent', 'booking_guard_appointment_change',
                                  'booking_record_history', 'booking_refuse_change'] LOOP
        IF to_regprocedure('booking.' || v_name || '()') IS NULL THEN
            EXECUTE format('ALTER FUNCTION public.%I() SET SCHEMA booking', v_name);
        END IF;
        -- Created with public in their pinned search_path: now they read booking's tables.
        EXECUTE format('ALTER FUNCTION booking.%I() SET search_path = pg_catalog, booking, pg_temp', v_name);
    END LOOP;

    FOREACH v_name IN ARRAY ARRAY['reporting_slot_utilisation', 'reporting_appointment_counts'] LOOP
        IF to_regclass('booking_reporting.' || v_name) IS NULL THEN
            EXECUTE format('ALTER VIEW public.%I SET SCHEMA booking_reporting', v_name);
        END IF;
    END LOOP;
END
$$;

RESET ROLE;

-- Each role gets USAGE on exactly the schemas it needs, and nothing in public
-- beyond what PUBLIC itself has there.
REVOKE ALL ON SCHEMA booking, booking_api, booking_reporting FROM PUBLIC;
GRANT USAGE ON SCHEMA booking_api TO medbook_api, medbook_reporting;
GRANT USAGE ON SCHEMA booking_reporting TO medbook_reporting;
REVOKE CREATE ON SCHEMA public FROM medbook_owner;
REVOKE USAGE ON SCHEMA public FROM medbook_api, medbook_reporting;
