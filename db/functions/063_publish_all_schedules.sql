/* Why: a practice keeps a rolling horizon published without anyone
   pressing a button: a DBA or a nightly job publishes every practitioner
   with schedule rules through their local today + p_days, in one call:
       CALL publish_all_schedules(28);
   It is a procedure, not a function, so that it can commit after each
   practitioner: each one's exclusive lock (006) is held only while their own
   slots are written, never while the others are, and bookings go on
   meanwhile. That needs the caller's own rights (a SECURITY DEFINER routine
   or one with a SET clause may not commit), so it is for medbook_owner and
   superusers only -- the same people who run migrations -- and every name in
   it is schema-qualified. A practitioner whose publish fails (a lock
   timeout, say) is counted, reported as a WARNING and left for the next run;
   publishing is idempotent, so running it again is always safe. */
CREATE OR REPLACE PROCEDURE booking_api.publish_all_schedules(
    p_days                integer,
    INOUT practitioners   integer DEFAULT NULL,
    INOUT created         bigint DEFAULT NULL,
    INOUT skipped         bigint DEFAULT NULL,
    INOUT failed          integer DEFAULT NULL
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_practitioner_id bigint;
    v_result          record;
BEGIN
    IF p_days IS NULL OR p_days NOT BETWEEN 0 AND 730 THEN
        RAISE EXCEPTION 'days must be between 0 and 730'
            USING ERRCODE = 'MB400', DETAIL = format('days=%s', p_days);
    END IF;
    practitioners := 0;
    created := 0;
    skipped := 0;
    failed := 0;
    FOR v_practitioner_id IN
        SELECT DISTINCT r.practitioner_id FROM booking.schedule_rules r ORDER BY r.practitioner_id
    LOOP
        BEGIN
            SELECT p.created, p.skipped INTO v_result
              FROM booking.booking_publish(
                       v_practitioner_id,
                       (booking_api.booking_now() AT TIME ZONE booking.booking_time_zone(v_practitioner_id))::date
                           + p_days) p;
            practitioners := practitioners + 1;
            created := created + v_result.created;
            skipped := skipped + v_result.skipped;
        EXCEPTION WHEN OTHERS THEN
            failed := failed + 1;
            RAISE WARNING 'publishing practitioner % failed: % (%)', v_practitioner_id, SQLERRM, SQLSTATE;
        END;
        COMMIT;
    END LOOP;
END
$$;

COMMENT ON PROCEDURE booking_api.publish_all_schedules(integer, integer, bigint, bigint, integer) IS
    'Publishes every practitioner''s schedule rules through their local today + p_days (0-730), committing after '
    'each practitioner; returns practitioners published, slots created and skipped, and failures. Call it outside '
    'a transaction block, as medbook_owner or a superuser. Errors: MB400.';
REVOKE ALL ON PROCEDURE booking_api.publish_all_schedules(integer, integer, bigint, bigint, integer) FROM PUBLIC;
