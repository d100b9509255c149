/* Why: a patient starts from "which physio can see me on Thursday?". The
   directory lists practitioners, optionally of one specialty (exact,
   case-insensitive) and only those with an available, not yet started slot
   on a local date (in p_time_zone, else in each practitioner's own zone),
   ordered by their next available start (NULLs last), then id, and pages by
   a signed keyset cursor on that pair.

   It must stay fast with 100,000 practitioners and 10 million slots, so no
   step may read slots outside what it asks about. Computing every
   practitioner's next start and sorting would be one index probe per
   practitioner (about 0.6 s at 100,000). Instead the first phase walks the
   available future slots in start order (availability_slots_available_by_time)
   from the cursor's position and keeps a slot only if it is its
   practitioner's first available future slot (one probe of
   availability_slots_available_by_start) and the practitioner passes the
   filters (a primary-key lookup first, one more probe for the date): the walk meets
   practitioners exactly in directory order, and a page costs about one probe
   per slot walked. The walk stops after 1,000 slots; if the page is not full
   by then (a rare specialty, a date few practitioners work) the second phase
   takes the candidates instead -- the practitioners of that specialty, or
   the ones with an available slot in the date's window (a range scan of just
   that window) -- probes each once and sorts them. A date on which nobody
   has anything available (in any zone's reading of it) is answered by one
   probe of that window before any walk. Practitioners with
   nothing available come last, by id, from the practitioners' primary key.
   All phases run in one snapshot (STABLE) and produce the same order, so a
   listing may switch between them from one page to the next.

   The order follows live data: a practitioner whose next slot is booked or
   published between two pages can move across the cursor and be seen twice
   or not at all in that listing. Slot listings page on fixed start times and
   have no such effect. */
CREATE OR REPLACE FUNCTION booking_api.list_practitioners(
    p_actor_user_id bigint,
    p_specialty     text DEFAULT NULL,
    p_available_on  date DEFAULT NULL,
    p_time_zone     text DEFAULT NULL,
    p_limit         integer DEFAULT 20,
    p_cursor        text DEFAULT NULL
)
RETURNS TABLE (id bigint, name text, specialty text, bio text, time_zone text,
               next_available_start timestamptz, next_cursor text)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_now        timestamptz := booking_api.booking_now();
    v_specialty  text := lower(p_specialty);
    v_zone       text;
    v_scope      jsonb;
    v_after_time timestamptz;
    v_after_id   bigint := 0;
    v_in_tail    boolean := false;
    v_ids        bigint[] := '{}'::bigint[];
    v_starts     timestamptz[] := '{}'::timestamptz[];
    v_walked     integer := 0;
    v_exhausted  boolean := true;
    v_want       integer;
    r            record;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_limit(p_limit);
    IF char_length(p_specialty) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'specialty must be 1 to 200 characters' USING ERRCODE = 'MB400',
              HINT = 'Leave specialty out to list every specialty.';
    END IF;
    IF p_time_zone IS NOT NULL THEN
        v_zone := booking_time_zone(NULL, p_time_zone);
    END IF;
    v_want := p_limit + 1;
    v_scope := jsonb_build_array('practitioners', v_specialty, p_available_on, v_zone);
    IF p_cursor IS NOT NULL THEN
        SELECT c.after_time, c.after_id INTO v_after_time, v_after_id FROM booking_cursor_decode(v_scope, p_cursor) c;
        v_in_tail := v_after_time IS NULL;
    END IF;

    IF p_available_on IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM availability_slots w
             WHERE w.status = 'available' AND w.end_time > w.start_time AND w.start_time > v_now
               AND w.start_time >= (p_available_on::timestamp - interval '14 hours') AT TIME ZONE 'UTC'
               AND w.start_time < (p_available_on::timestamp + interval '36 hours') AT TIME ZONE 'UTC') THEN
        RETURN;  -- nobody has anything available that day, in any zone: one index probe says so
    END IF;

    IF NOT v_in_tail THEN
        -- Phase 1: walk available future slots in start order, from the cursor.
        FOR r IN
            SELECT s.start_time, s.practitioner_id
              FROM availability_slots s
             WHERE s.status = 'available' AND s.end_time > s.start_time  -- the index's private clause (0006)
               AND s.start_time > v_now
               AND (s.start_time, s.practitioner_id) > (coalesce(v_after_time, v_now), v_after_id)
             ORDER BY s.start_time, s.practitioner_id
        LOOP
            v_walked := v_walked + 1;
            IF v_walked > 1000 THEN
                v_exhausted := false;
                EXIT;
            END IF;
            CONTINUE WHEN v_specialty IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM public.practitioners pr
                 WHERE pr.id = r.practitioner_id AND lower(pr.specialty) = v_specialty);
            CONTINUE WHEN EXISTS (
                SELECT 1 FROM availability_slots x
                 WHERE x.practitioner_id = r.practitioner_id AND x.status = 'available'
                   AND x.start_time > v_now AND x.start_time < r.start_time);
            CONTINUE WHEN p_available_on IS NOT NULL
                AND NOT booking_available_on(r.practitioner_id, p_available_on, v_zone, v_now);
            v_ids := v_ids || r.practitioner_id;
            v_starts := v_starts || r.start_time;
            EXIT WHEN cardinality(v_ids) >= v_want;
        END LOOP;

        IF NOT v_exhausted AND cardinality(v_ids) < v_want THEN
            -- Phase 2: the walk ran long; probe the candidates instead.
            SELECT coalesce(array_agg(c.id ORDER BY c.next_start, c.id), '{}'),
                   coalesce(array_agg(c.next_start ORDER BY c.next_start, c.id), '{}')
              INTO v_ids, v_starts
              FROM (SELECT pr.id::bigint AS id, nx.start_time AS next_start
                      FROM public.practitioners pr
                     CROSS JOIN LATERAL (
                           SELECT s.start_time FROM availability_slots s
                            WHERE s.practitioner_id = pr.id AND s.status = 'available' AND s.start_time > v_now
                            ORDER BY s.start_time LIMIT 1) nx
                     WHERE (v_specialty IS NULL OR lower(pr.specialty) = v_specialty)
                       AND (p_available_on IS NULL OR pr.id IN (
                             SELECT w.practitioner_id FROM availability_slots w
                              WHERE w.status = 'available' AND w.end_time > w.start_time
                                AND w.start_time >= (p_available_on::timestamp - interval '14 hours') AT TIME ZONE 'UTC'
                                AND w.start_time < (p_available_on::timestamp + interval '36 hours') AT TIME ZONE 'UTC'
                                AND w.start_time > v_now))
                       AND (nx.start_time, pr.id::bigint) > (coalesce(v_after_time, v_now), v_after_id)
                       AND (p_available_on IS NULL OR booking_available_on(pr.id, p_available_on, v_zone, v_now))
                     ORDER BY nx.start_time, pr.id
                     LIMIT v_want) c;
            v_exhausted := cardinality(v_ids) < v_want;
        END IF;
        v_after_id := 0;
    END IF;

    IF v_exhausted AND cardinality(v_ids) < v_want AND p_available_on IS NULL THEN
        -- Phase 3: practitioners with nothing available, by id.
        SELECT v_ids || coalesce(array_agg(t.id ORDER BY t.id), '{}'),
               v_starts || coalesce(array_agg(NULL::timestamptz ORDER BY t.id), '{}')
          INTO v_ids, v_starts
          FROM (SELECT pr.id::bigint AS id
                  FROM public.practitioners pr
                 WHERE pr.id > v_after_id
                   AND (v_specialty IS NULL OR lower(pr.specialty) = v_specialty)
                   AND NOT EXISTS (SELECT 1 FROM availability_slots s
                                    WHERE s.practitioner_id = pr.id AND s.status = 'available'
                                      AND s.start_time > v_now)
                 ORDER BY pr.id
                 LIMIT v_want - cardinality(v_ids)) t;
    END IF;

    RETURN QUERY
        SELECT pr.id::bigint, u.name::text, pr.specialty::text, pr.bio::text, coalesce(b.time_zone, 'UTC'),
               p.start_time,
               CASE WHEN p.n = p_limit AND cardinality(v_ids) > p_limit
                    THEN booking_cursor_encode(v_scope, p.start_time, p.id) END
          FROM unnest(v_ids, v_starts) WITH ORDINALITY AS p(id, start_time, n)
          JOIN public.practitioners pr ON pr.id = p.id
          JOIN public.users u ON u.id = pr.user_id
          LEFT JOIN practitioner_booking_settings b ON b.practitioner_id = pr.id
         WHERE p.n <= p_limit
         ORDER BY p.n;
END
$$;

COMMENT ON FUNCTION booking_api.list_practitioners(bigint, text, date, text, integer, text) IS
    'The practitioner directory, to any user: optionally one specialty (exact, case-insensitive) and only those '
    'with an available slot on local date p_available_on (in p_time_zone, else their own zone); ordered by next '
    'available start (NULLs last), then id; at most p_limit (1-500) rows, the last one carrying next_cursor when '
    'more follow. Errors: MB401, MB400, MBC01 invalid_cursor.';
REVOKE ALL ON FUNCTION booking_api.list_practitioners(bigint, text, date, text, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.list_practitioners(bigint, text, date, text, integer, text) TO medbook_api;
