/* Why: a FHIR client searches a schedule's slots by status and by a start
   range with both bounds, pages through them by keyset, and is told how many
   match in all (Bundle.total). The existing lists answer "the next available
   slots" or "one local date", not a range of instants, and count nothing.

   Who sees what is the rule of the slot lists: available slots of any
   practitioner to any user; booked ones to that practitioner only (MB403 when
   someone else asks for them; with no status given, each caller gets what they
   may see). Only slots that have not started are listed, as everywhere else.
   The range is half-open, [p_start_from, p_start_before); NULL leaves a side
   open. Order is (start_time, id). Pages are keyset pages with the REST
   lists' signed cursors (booking_cursor_encode(), 052): the last row of a
   page that more rows follow carries next_cursor, signed with this search's
   scope (practitioner, statuses, range), and a cursor resumes strictly after
   that row; a changed cursor, or one of another search, is MBC01.

   Shape: one row per slot of the page (with its version, the Slot's
   meta.versionId), each also carrying total (matches of
   the whole search, ignoring the position). An empty page is one row with
   only total set, so the total always arrives. Reads only: a page and its
   total come from one snapshot (one statement). */
CREATE OR REPLACE FUNCTION booking_api.search_slots(
    p_actor_user_id    bigint,
    p_practitioner_id  bigint,
    p_statuses         text[] DEFAULT NULL,
    p_start_from       timestamptz DEFAULT NULL,
    p_start_before     timestamptz DEFAULT NULL,
    p_limit            integer DEFAULT 100,
    p_cursor           text DEFAULT NULL
)
RETURNS TABLE (total bigint, next_cursor text, id bigint, practitioner_id bigint, start_time timestamptz,
               end_time timestamptz, status text, version bigint)
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
    v_scope    jsonb;
    v_after    timestamptz;
    v_after_id bigint;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner_exists(p_practitioner_id);
    PERFORM booking_require_limit(p_limit);
    IF p_statuses IS NOT NULL AND NOT p_statuses <@ ARRAY['available', 'booked'] THEN
        RAISE EXCEPTION 'a slot status is available or booked'
            USING ERRCODE = 'MB400', DETAIL = format('statuses=%s', left(p_statuses::text, 64));
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
    v_scope := jsonb_build_array('fhir-slots', p_practitioner_id,
                                 (SELECT coalesce(array_agg(DISTINCT x ORDER BY x), '{}') FROM unnest(v_statuses) x),
                                 p_start_from, p_start_before);
    IF p_cursor IS NOT NULL THEN
        SELECT c.after_time, c.after_id INTO v_after, v_after_id FROM booking_cursor_decode(v_scope, p_cursor) c;
    END IF;

    RETURN QUERY
        WITH matches AS MATERIALIZED (
            SELECT s.id, s.practitioner_id, s.start_time, s.end_time, s.status, s.version
              FROM availability_slots s
             WHERE s.practitioner_id = p_practitioner_id
               AND s.status = ANY (v_statuses)
               AND s.start_time > v_now
               AND s.start_time >= coalesce(p_start_from, '-infinity')
               AND s.start_time < coalesce(p_start_before, 'infinity')
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
               p.id, p.practitioner_id, p.start_time, p.end_time, p.status, p.version
          FROM summary c
          LEFT JOIN page p ON p.n <= p_limit
         ORDER BY p.n;
END
$$;

COMMENT ON FUNCTION booking_api.search_slots(bigint, bigint, text[], timestamptz, timestamptz, integer, text) IS
    'Slots of a practitioner that have not started, by status (available to anyone; booked to that practitioner '
    'only; NULL: what the caller may see) and start in [p_start_from, p_start_before), in keyset pages of p_limit '
    '(1-500) ordered by start, the last row carrying a signed next_cursor when more follow. Every row carries '
    'total; an empty page is one row with only that. Errors: MB401, MB403, MB404, MB400, MBC01 invalid_cursor.';
REVOKE ALL ON FUNCTION booking_api.search_slots(bigint, bigint, text[], timestamptz, timestamptz, integer, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.search_slots(bigint, bigint, text[], timestamptz, timestamptz, integer, text)
    TO medbook_api;
