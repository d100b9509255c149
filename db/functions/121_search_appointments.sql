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
   [p_start_from, p_start_before). Order is (start_time, id); a page resumes
   strictly after the keyset position (p_after_start_time, p_after_id).

   Shape: one row per appointment of the page, each also carrying total
   (matches of the whole search) and has_more (rows follow this page). An empty
   page is one row with only total and has_more set. One statement: the page and
   its total come from one snapshot. */
CREATE OR REPLACE FUNCTION booking_api.search_appointments(
    p_actor_user_id    bigint,
    p_patient_id       bigint DEFAULT NULL,
    p_practitioner_id  bigint DEFAULT NULL,
    p_statuses         text[] DEFAULT NULL,
    p_start_from       timestamptz DEFAULT NULL,
    p_start_before     timestamptz DEFAULT NULL,
    p_limit            integer DEFAULT 100,
    p_after_start_time timestamptz DEFAULT NULL,
    p_after_id         bigint DEFAULT NULL
)
RETURNS TABLE (total bigint, has_more boolean, id bigint, slot_id bigint, patient_id bigint,
               practitioner_id bigint, status text, start_time timestamptz, end_time timestamptz,
               booked_at timestamptz, cancelled_at timestamptz, cancelled_by bigint, cancellation_reason text)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_patient_user bigint;
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
    IF (p_after_start_time IS NULL) <> (p_after_id IS NULL) THEN
        RAISE EXCEPTION 'a page position needs both after_start_time and after_id'
            USING ERRCODE = 'MB400', HINT = 'Pass both, or neither for the first page.';
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
            SELECT m.* FROM matches m
             WHERE p_after_id IS NULL OR (m.start_time, m.id) > (p_after_start_time, p_after_id)
             ORDER BY m.start_time, m.id
             LIMIT p_limit + 1
        ), summary AS (
            SELECT (SELECT count(*) FROM matches) AS total, (SELECT count(*) FROM page) > p_limit AS has_more
        )
        SELECT c.total, c.has_more, p.id, p.slot_id, p.patient_id, p.practitioner_id, p.status, p.start_time,
               p.end_time, p.booked_at, p.cancelled_at, p.cancelled_by, p.cancellation_reason
          FROM summary c
          LEFT JOIN (SELECT * FROM page ORDER BY page.start_time, page.id LIMIT p_limit) p ON true
         ORDER BY p.start_time, p.id;
END
$$;

COMMENT ON FUNCTION booking_api.search_appointments(bigint, bigint, bigint, text[], timestamptz, timestamptz, integer,
                                                    timestamptz, bigint) IS
    'Appointments of the acting patient or practitioner (one of p_patient_id, p_practitioner_id must be the actor; '
    'the other, if given, narrows), any or '
    'the given statuses, start in [p_start_from, p_start_before), in keyset pages of p_limit (1-500) after '
    '(p_after_start_time, p_after_id), ordered by start. Every row carries total and has_more; an empty page is '
    'one row with only those. Errors: MB401, MB403, MB404, MB400.';
REVOKE ALL ON FUNCTION booking_api.search_appointments(bigint, bigint, bigint, text[], timestamptz, timestamptz,
                                                       integer, timestamptz, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.search_appointments(bigint, bigint, bigint, text[], timestamptz, timestamptz,
                                                          integer, timestamptz, bigint) TO medbook_api;
