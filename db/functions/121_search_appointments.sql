/* Why: a FHIR client searches appointments by patient, practitioner, status and
   a start range, pages through them by keyset, and is told how many match in
   all (Bundle.total). The REST lists answer one owner's upcoming appointments.

   Who sees what is the rule of those lists, and of reading one appointment: a
   patient their own, a practitioner their own. The search names at least one
   of p_patient_id and p_practitioner_id (MB404 for one that does not exist),
   and the acting user must be one of those named (MB403 otherwise); the other,
   if named, only narrows the list: a patient's appointments with one
   practitioner, or a practitioner's with one patient. Every
   status and every time is included unless filtered: the range is half-open,
   [p_start_from, p_start_before). Order is (start_time, id). Pages are keyset
   pages with the REST lists' signed cursors (booking_cursor_encode(), 052):
   the last row of a page that more rows follow carries next_cursor, signed
   with this search's scope (actor, patient, practitioner, statuses, range),
   and a cursor resumes strictly after that row (MBC01 for any other).

   Shape: one row per appointment of the page (the booking_api.appointment
   columns: the reschedule links and the version included), each also carrying
   total (matches of the whole search). An empty page is one row with only total
   set. One statement: the page and its total come from one snapshot. */
CREATE OR REPLACE FUNCTION booking_api.search_appointments(
    p_actor_user_id    bigint,
    p_patient_id       bigint DEFAULT NULL,
    p_practitioner_id  bigint DEFAULT NULL,
    p_statuses         text[] DEFAULT NULL,
    p_start_from       timestamptz DEFAULT NULL,
    p_start_before     timestamptz DEFAULT NULL,
    p_limit            integer DEFAULT 100,
    p_cursor           text DEFAULT NULL
)
RETURNS TABLE (total bigint, next_cursor text, id bigint, slot_id bigint, patient_id bigint,
               practitioner_id bigint, status text, start_time timestamptz, end_time timestamptz,
               booked_at timestamptz, cancelled_at timestamptz, cancelled_by bigint, cancellation_reason text,
               rescheduled_from bigint, rescheduled_to bigint, version bigint)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_patient_user bigint;
    v_scope        jsonb;
    v_after        timestamptz;
    v_after_id     bigint;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    IF p_patient_id IS NULL AND p_practitioner_id IS NULL THEN
        RAISE EXCEPTION 'name the patient or the practitioner whose appointments to search'
            USING ERRCODE = 'MB400', HINT = 'Give your own patient id, your own practitioner id, or both.';
    END IF;
    IF p_patient_id IS NOT NULL THEN
        SELECT pa.user_id INTO v_patient_user FROM patients pa WHERE pa.id = p_patient_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'patient not found'
                USING ERRCODE = 'MB404', DETAIL = format('patient_id=%s', p_patient_id);
        END IF;
    END IF;
    IF p_practitioner_id IS NOT NULL THEN
        PERFORM booking_require_practitioner_exists(p_practitioner_id);
    END IF;
    IF v_patient_user IS DISTINCT FROM p_actor_user_id
       AND NOT EXISTS (SELECT 1 FROM public.practitioners pr
                        WHERE pr.id = p_practitioner_id AND pr.user_id = p_actor_user_id) THEN
        RAISE EXCEPTION 'patients and practitioners search only their own appointments'
            USING ERRCODE = 'MB403',
                  DETAIL = format('patient_id=%s practitioner_id=%s user_id=%s', p_patient_id, p_practitioner_id,
                                  p_actor_user_id),
                  HINT = 'Name yourself as the patient or as the practitioner.';
    END IF;
    PERFORM booking_require_limit(p_limit);
    -- completed and no_show: the attendance states (issue 10), accepted ahead of them.
    IF p_statuses IS NOT NULL AND NOT p_statuses <@ ARRAY['booked', 'cancelled', 'completed', 'no_show'] THEN
        RAISE EXCEPTION 'an appointment status is booked, cancelled, completed or no_show'
            USING ERRCODE = 'MB400', DETAIL = format('statuses=%s', left(p_statuses::text, 64));
    END IF;
    v_scope := jsonb_build_array('fhir-appointments', p_actor_user_id, p_patient_id, p_practitioner_id,
                                 (SELECT array_agg(DISTINCT x ORDER BY x) FROM unnest(p_statuses) x),
                                 p_start_from, p_start_before);
    IF p_cursor IS NOT NULL THEN
        SELECT c.after_time, c.after_id INTO v_after, v_after_id FROM booking_cursor_decode(v_scope, p_cursor) c;
    END IF;

    RETURN QUERY
        WITH matches AS MATERIALIZED (
            SELECT (appointment_out(a)).*
              FROM appointments a
             WHERE (p_patient_id IS NULL OR a.patient_id = p_patient_id)
               AND (p_practitioner_id IS NULL OR a.practitioner_id = p_practitioner_id)
               AND (p_statuses IS NULL OR a.status = ANY (p_statuses))
               AND a.start_time >= coalesce(p_start_from, '-infinity')
               AND a.start_time < coalesce(p_start_before, 'infinity')
        ), page AS (
            SELECT m.*, row_number() OVER (ORDER BY m.start_time, m.id) AS n
              FROM (SELECT * FROM matches m
                     WHERE v_after_id IS NULL OR (m.start_time, m.id) > (v_after, v_after_id)
                     ORDER BY m.start_time, m.id
                     LIMIT p_limit + 1) m
        ), summary AS (
            SELECT (SELECT count(*) FROM matches) AS total, (SELECT count(*) FROM page) > p_limit AS more
        )
        SELECT c.total,
               CASE WHEN c.more AND p.n = p_limit THEN booking_cursor_encode(v_scope, p.start_time, p.id) END,
               p.id, p.slot_id, p.patient_id, p.practitioner_id, p.status, p.start_time,
               p.end_time, p.booked_at, p.cancelled_at, p.cancelled_by, p.cancellation_reason,
               p.rescheduled_from, p.rescheduled_to, p.version
          FROM summary c
          LEFT JOIN page p ON p.n <= p_limit
         ORDER BY p.n;
END
$$;

COMMENT ON FUNCTION booking_api.search_appointments(bigint, bigint, bigint, text[], timestamptz, timestamptz, integer, text) IS
    'Appointments of the acting patient or practitioner (one of p_patient_id, p_practitioner_id must be the actor; '
    'the other, if given, narrows), any or '
    'the given statuses, start in [p_start_from, p_start_before), in keyset pages of p_limit (1-500) ordered by '
    'start, the last row carrying a signed next_cursor when more follow. Every row carries total; an empty page '
    'is one row with only that. Errors: MB401, MB403, MB404, MB400, MBC01 invalid_cursor.';
REVOKE ALL ON FUNCTION booking_api.search_appointments(bigint, bigint, bigint, text[], timestamptz, timestamptz,
                                                       integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.search_appointments(bigint, bigint, bigint, text[], timestamptz, timestamptz,
                                                          integer, text) TO medbook_api;
