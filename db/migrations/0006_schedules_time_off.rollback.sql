-- The procedure publish_all_schedules (db/functions/063) goes too: the
-- function clean-ups of earlier releases and of 0005's rollback drop routines
-- with DROP FUNCTION, which refuses a procedure.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
SET LOCAL ROLE medbook_owner;

DO $$
DECLARE
    v_procedure regprocedure;
BEGIN
    FOR v_procedure IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.prokind = 'p' AND p.pronamespace IN ('booking'::regnamespace, 'booking_api'::regnamespace)
    LOOP
        EXECUTE format('DROP PROCEDURE %s', v_procedure);
    END LOOP;
END
$$;

-- A drop is quick (no scan), but takes ACCESS EXCLUSIVE on the slots for that moment;
-- lock_timeout bounds the wait for it. (CONCURRENTLY cannot run in a migration's transaction.)
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX IF EXISTS booking.availability_slots_available_by_time;
-- Dropping the tables 0006 created is what rolling it back means.
-- squawk-ignore ban-drop-table
DROP TABLE IF EXISTS booking.cursor_key, booking.time_off_periods, booking.schedule_rules;

RESET ROLE;
