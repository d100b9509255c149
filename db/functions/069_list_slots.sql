/* Why: what a patient browses and what a practitioner plans with. The slots
   of one practitioner that have not started, earliest first, optionally
   only those starting on one local date (p_date) or in a range of local
   dates (p_from to p_to inclusive, at most 31 days; not together with
   p_date), read in p_time_zone or the practitioner's zone. p_status
   'available' (default) lists what can be booked, to anyone; 'booked' and
   'all' are the practitioner's own view (MB403 for anyone else) and carry
   each booked slot's appointment_id.

   Pages are keyset pages: at most p_limit (1-500) rows, the last one
   carrying next_cursor when more follow, and a cursor resumes strictly after
   the start of the last row returned. Two slots of one practitioner never
   start at the same instant (they would overlap), so the start alone is a
   stable position: slots inserted or deleted between two pages neither
   shift the rest nor make any repeat. A cursor is signed together with the
   listing's practitioner, status and window (booking_cursor_encode), so a
   changed or made-up one is MBC01. Available slots come from
   availability_slots_available_by_start, booked ones from their booked
   appointments, i.e. the appointment holding each (booked, or attended: completed
   or no_show keep their slot; appointments_by_practitioner); 'all' merges both index
   scans, so no page reads more than p_limit + 1 rows of each. */
CREATE OR REPLACE FUNCTION booking_api.list_slots(
    p_actor_user_id   bigint,
    p_practitioner_id bigint,
    p_date            date DEFAULT NULL,
    p_from            date DEFAULT NULL,
    p_to              date DEFAULT NULL,
    p_time_zone       text DEFAULT NULL,
    p_status          text DEFAULT 'available',
    p_limit           integer DEFAULT 100,
    p_cursor          text DEFAULT NULL
)
RETURNS TABLE (id bigint, practitioner_id bigint, start_time timestamptz, end_time timestamptz, status text,
               appointment_id bigint, next_cursor text)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_now       timestamptz := booking_api.booking_now();
    v_status    text := coalesce(p_status, 'available');
    v_time_zone text;
    v_from      timestamptz := '-infinity'::timestamptz;
    v_to        timestamptz := 'infinity'::timestamptz;
    v_after     timestamptz;
    v_scope     jsonb;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner_exists(p_practitioner_id);
    IF v_status NOT IN ('available', 'booked', 'all') THEN
        RAISE EXCEPTION 'status must be available, booked or all'
            USING ERRCODE = 'MB400', DETAIL = format('status=%s', left(v_status, 32));
    END IF;
    IF v_status <> 'available' THEN
        PERFORM booking_require_practitioner(p_actor_user_id, p_practitioner_id);
    END IF;
    PERFORM booking_require_limit(p_limit);
    IF p_date IS NOT NULL AND (p_from IS NOT NULL OR p_to IS NOT NULL) THEN
        RAISE EXCEPTION 'give either date or from and to, not both'
            USING ERRCODE = 'MB400', HINT = 'date is one local day; from and to a range of them.';
    END IF;
    IF (p_from IS NULL) <> (p_to IS NULL) OR p_to < p_from OR p_to - p_from >= 31 THEN
        RAISE EXCEPTION 'from and to must be given together, from first, at most 31 days apart inclusive'
            USING ERRCODE = 'MB400', DETAIL = format('from=%s to=%s', p_from, p_to),
                  HINT = 'List longer periods page by page with the cursor, a month at a time.';
    END IF;
    v_time_zone := booking_time_zone(p_practitioner_id, p_time_zone);
    IF coalesce(p_date, p_from) IS NOT NULL THEN
        v_from := coalesce(p_date, p_from)::timestamp AT TIME ZONE v_time_zone;
        v_to := (coalesce(p_date, p_to) + 1)::timestamp AT TIME ZONE v_time_zone;
    END IF;
    v_scope := jsonb_build_array('slots', p_practitioner_id, v_status, v_from, v_to);
    v_after := v_now;
    IF p_cursor IS NOT NULL THEN
        SELECT greatest(c.after_time, v_now) INTO v_after FROM booking_cursor_decode(v_scope, p_cursor) c;
    END IF;

    RETURN QUERY
        WITH page AS (
            SELECT x.*, row_number() OVER (ORDER BY x.start_time) AS n
              FROM ((SELECT s.id, s.practitioner_id, s.start_time, s.end_time, s.status, NULL::bigint AS appointment_id
                       FROM availability_slots s
                      WHERE v_status IN ('available', 'all')
                        AND s.practitioner_id = p_practitioner_id AND s.status = 'available'
                        AND s.start_time > v_after AND s.start_time >= v_from AND s.start_time < v_to
                      ORDER BY s.start_time
                      LIMIT p_limit + 1)
                    UNION ALL
                    (SELECT s.id, s.practitioner_id, s.start_time, s.end_time, s.status, a.id
                       FROM appointments a
                       JOIN availability_slots s ON s.id = a.slot_id
                      WHERE v_status IN ('booked', 'all')
                        AND a.practitioner_id = p_practitioner_id AND a.status <> 'cancelled'
                        AND a.start_time > v_after AND a.start_time >= v_from AND a.start_time < v_to
                      ORDER BY a.start_time
                      LIMIT p_limit + 1)) x
             ORDER BY x.start_time
             LIMIT p_limit + 1)
        SELECT p.id, p.practitioner_id, p.start_time, p.end_time, p.status, p.appointment_id,
               CASE WHEN p.n = p_limit AND EXISTS (SELECT 1 FROM page q WHERE q.n > p_limit)
                    THEN booking_cursor_encode(v_scope, p.start_time, p.id) END
          FROM page p
         WHERE p.n <= p_limit
         ORDER BY p.n;
END
$$;

COMMENT ON FUNCTION booking_api.list_slots(bigint, bigint, date, date, date, text, text, integer, text) IS
    'A practitioner''s slots that have not started, earliest first: all of them, one local date or a range of '
    'up to 31 local dates (in p_time_zone, default theirs); status available (anyone), booked or all (that '
    'practitioner only, with appointment_id); keyset pages of p_limit (1-500) with a signed next_cursor on the last '
    'row when more follow. Errors: MB401, MB403, MB404, MB400, MBC01 invalid_cursor.';
REVOKE ALL ON FUNCTION booking_api.list_slots(bigint, bigint, date, date, date, text, text, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.list_slots(bigint, bigint, date, date, date, text, text, integer, text) TO medbook_api;
