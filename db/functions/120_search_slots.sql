/* Why: a FHIR client searches a schedule's slots by status and by a start
   range with both bounds, pages through them by keyset, and is told how many
   match in all (Bundle.total). The existing lists answer "the next available
   slots" or "one local date", not a range of instants, and count nothing.

   Who sees what is the rule of the slot lists: available slots of any
   practitioner to any user; booked ones to that practitioner only (MB403 when
   someone else asks for them; with no status given, each caller gets what they
   may see). Only slots that have not started are listed, as everywhere else.
   The range is half-open, [p_start_from, p_start_before); NULL leaves a side
   open. Order is (start_time, id); a page resumes strictly after the keyset
   position (p_after_start_time, p_after_id) of the previous page's last row.

   Shape: one row per slot of the page, each also carrying total (matches of
   the whole search, ignoring the position) and has_more (rows follow this
   page). An empty page is one row with only total and has_more set, so the
   total always arrives. Reads only, at READ COMMITTED: a page and its total
   come from one snapshot (one statement). */
CREATE OR REPLACE FUNCTION booking_api.search_slots(
    p_actor_user_id    bigint,
    p_practitioner_id  bigint,
    p_statuses         text[] DEFAULT NULL,
    p_start_from       timestamptz DEFAULT NULL,
    p_start_before     timestamptz DEFAULT NULL,
    p_limit            integer DEFAULT 100,
    p_after_start_time timestamptz DEFAULT NULL,
    p_after_id         bigint DEFAULT NULL
)
RETURNS TABLE (total bigint, has_more boolean, id bigint, practitioner_id bigint, start_time timestamptz,
               end_time timestamptz, status text)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_now      timestamptz := booking_api.booking_now();
    v_own      boolean;
    v_statuses text[];
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner_exists(p_practitioner_id);
    PERFORM booking_require_limit(p_limit);
    IF p_statuses IS NOT NULL AND NOT p_statuses <@ ARRAY['available', 'booked'] THEN
        RAISE EXCEPTION 'a slot status is available or booked'
            USING ERRCODE = 'MB400', DETAIL = format('statuses=%s', left(p_statuses::text, 64));
    END IF;
    IF (p_after_start_time IS NULL) <> (p_after_id IS NULL) THEN
        RAISE EXCEPTION 'a page position needs both after_start_time and after_id'
            USING ERRCODE = 'MB400', HINT = 'Pass both, or neither for the first page.';
    END IF;
    v_own := EXISTS (SELECT 1 FROM public.practitioners pr
                      WHERE pr.id = p_practitioner_id AND pr.user_id = p_actor_user_id);
    IF 'booked' = ANY (p_statuses) AND NOT v_own THEN
        RAISE EXCEPTION 'only the practitioner may list their booked slots'
            USING ERRCODE = 'MB403',
                  DETAIL = format('practitioner_id=%s user_id=%s', p_practitioner_id, p_actor_user_id),
                  HINT = 'Ask for available slots, or read one slot by its id.';
    END IF;
    v_statuses := coalesce(p_statuses, CASE WHEN v_own THEN ARRAY['available', 'booked'] ELSE ARRAY['available'] END);

    RETURN QUERY
        WITH matches AS MATERIALIZED (
            SELECT s.id, s.practitioner_id, s.start_time, s.end_time, s.status
              FROM availability_slots s
             WHERE s.practitioner_id = p_practitioner_id
               AND s.status = ANY (v_statuses)
               AND s.start_time > v_now
               AND s.start_time >= coalesce(p_start_from, '-infinity')
               AND s.start_time < coalesce(p_start_before, 'infinity')
        ), page AS (
            SELECT m.* FROM matches m
             WHERE p_after_id IS NULL OR (m.start_time, m.id) > (p_after_start_time, p_after_id)
             ORDER BY m.start_time, m.id
             LIMIT p_limit + 1
        ), summary AS (
            SELECT (SELECT count(*) FROM matches) AS total, (SELECT count(*) FROM page) > p_limit AS has_more
        )
        SELECT c.total, c.has_more, p.id, p.practitioner_id, p.start_time, p.end_time, p.status
          FROM summary c
          LEFT JOIN (SELECT * FROM page ORDER BY page.start_time, page.id LIMIT p_limit) p ON true
         ORDER BY p.start_time, p.id;
END
$$;

COMMENT ON FUNCTION booking_api.search_slots(bigint, bigint, text[], timestamptz, timestamptz, integer, timestamptz,
                                             bigint) IS
    'Slots of a practitioner that have not started, by status (available to anyone; booked to that practitioner '
    'only; NULL: what the caller may see) and start in [p_start_from, p_start_before), in keyset pages of p_limit '
    '(1-500) after (p_after_start_time, p_after_id), ordered by start. Every row carries total and has_more; an '
    'empty page is one row with only those. Errors: MB401, MB403, MB404, MB400.';
REVOKE ALL ON FUNCTION booking_api.search_slots(bigint, bigint, text[], timestamptz, timestamptz, integer,
                                                timestamptz, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.search_slots(bigint, bigint, text[], timestamptz, timestamptz, integer,
                                                   timestamptz, bigint) TO medbook_api;
