/* Why: the patient's and the practitioner's appointment lists filter and page
   the same way. Status filters: upcoming = booked and not started, soonest
   first; past = started or attended (booked, completed or no_show, start at or
   before now), latest first; cancelled, latest first; all, latest first. Pages
   are keyset pages over (start_time, id), the order of every list, so a page
   after (p_after_start_time, p_after_id) neither skips nor repeats a row that
   stays in the list while the caller pages. The query text is chosen from fixed
   fragments (no value is ever spliced in) so each call is planned with its own
   filter and can use appointments_by_patient or appointments_by_practitioner. */
CREATE OR REPLACE FUNCTION booking.booking_appointment_page(
    p_owner_column     text,
    p_owner_id         bigint,
    p_status           text,
    p_limit            integer,
    p_after_start_time timestamptz,
    p_after_id         bigint
)
RETURNS SETOF booking_api.appointment
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_filter    text;
    v_direction text := CASE WHEN p_status = 'upcoming' THEN 'ASC' ELSE 'DESC' END;
BEGIN
    IF p_owner_column NOT IN ('patient_id', 'practitioner_id') THEN
        RAISE EXCEPTION 'unknown list owner' USING ERRCODE = 'MB400';
    END IF;
    v_filter := CASE p_status
        WHEN 'upcoming'  THEN 'a.status = ''booked'' AND a.start_time > $2'
        WHEN 'past'      THEN 'a.status <> ''cancelled'' AND a.start_time <= $2'
        WHEN 'cancelled' THEN 'a.status = ''cancelled'''
        WHEN 'all'       THEN 'true'
    END;
    IF v_filter IS NULL THEN
        RAISE EXCEPTION 'status must be upcoming, past, cancelled or all'
            USING ERRCODE = 'MB400', DETAIL = format('status=%s', left(p_status, 32));
    END IF;
    PERFORM booking_require_limit(p_limit);
    IF (p_after_start_time IS NULL) <> (p_after_id IS NULL) THEN
        RAISE EXCEPTION 'a page position needs both after_start_time and after_id'
            USING ERRCODE = 'MB400', HINT = 'Pass both, or neither for the first page.';
    END IF;

    RETURN QUERY EXECUTE format(
        'SELECT (appointment_out(a)).* FROM appointments a WHERE a.%I = $1 AND %s %s '
        'ORDER BY a.start_time %s, a.id %s LIMIT $5',
        p_owner_column, v_filter,
        CASE WHEN p_after_id IS NULL THEN ''
             WHEN v_direction = 'ASC' THEN 'AND a.start_time >= $3 AND (a.start_time, a.id) > ($3, $4)'
             ELSE 'AND a.start_time <= $3 AND (a.start_time, a.id) < ($3, $4)' END,
        v_direction, v_direction)
        USING p_owner_id, booking_api.booking_now(), p_after_start_time, p_after_id, p_limit;
END
$$;

COMMENT ON FUNCTION booking.booking_appointment_page(text, bigint, text, integer, timestamptz, bigint) IS
    'One keyset page of a patient''s or practitioner''s appointments by status (upcoming | past | cancelled | '
    'all), after (p_after_start_time, p_after_id). Raises MB400. Internal helper of list_patient_appointments() '
    'and list_practitioner_appointments().';
REVOKE ALL ON FUNCTION booking.booking_appointment_page(text, bigint, text, integer, timestamptz, bigint) FROM PUBLIC;
