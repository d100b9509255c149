/* Why: a practitioner adds many slots at once (a clinic day, a week) in one
   call: all of them or none. Every item is checked like create_slot() --
   booking_validate_slot_times() for its range (MB400, MBS05, MBS04), then
   against the practitioner's existing slots and against the other items
   (MBS02: an item that overlaps an earlier item of the list is the one
   reported) -- and every failing item is reported, not only the first. The
   call then raises the SQLSTATE of the lowest failing index, with DETAIL
   holding a JSON array of {"index", "sqlstate", "detail"} (ids and times
   only), which the API returns as the problem's "errors". 1 to 500 items.
   Takes the practitioner's exclusive lock (006) like create_slot(); the
   exclusion constraint still backs the overlap check up. */
CREATE OR REPLACE FUNCTION booking_api.create_slots(
    p_actor_user_id   bigint,
    p_practitioner_id bigint,
    p_start_times     timestamptz[],
    p_end_times       timestamptz[]
)
RETURNS SETOF booking_api.slot
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_now    timestamptz := booking_api.booking_now();
    v_count  integer := coalesce(cardinality(p_start_times), 0);
    v_errors jsonb := '[]'::jsonb;
    v_first  text;
    v_state  text;
    v_text   text;
    r        record;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner(p_actor_user_id, p_practitioner_id);
    IF v_count NOT BETWEEN 1 AND 500 OR v_count <> coalesce(cardinality(p_end_times), 0) THEN
        RAISE EXCEPTION 'give 1 to 500 slots, each with a start_time and an end_time'
            USING ERRCODE = 'MB400',
                  DETAIL = format('start_times=%s end_times=%s', v_count, coalesce(cardinality(p_end_times), 0));
    END IF;
    PERFORM booking_lock_practitioner(p_practitioner_id, true);  -- see 006_booking_lock_practitioner.sql

    -- Each item's own range, in index order.
    FOR v_index IN 1 .. v_count LOOP
        BEGIN
            PERFORM booking_validate_slot_times(p_start_times[v_index], p_end_times[v_index], v_now);
        EXCEPTION WHEN SQLSTATE 'MB400' OR SQLSTATE 'MBS04' OR SQLSTATE 'MBS05' THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_text = MESSAGE_TEXT;
            v_errors := v_errors || jsonb_build_object('index', v_index - 1, 'sqlstate', v_state, 'detail', v_text);
        END;
    END LOOP;

    -- Overlaps, among the items whose range is acceptable: with existing slots, then with earlier items.
    FOR r IN
        WITH items AS (
            SELECT i.n - 1 AS idx, tstzrange(i.s, i.e) AS span
              FROM unnest(p_start_times, p_end_times) WITH ORDINALITY AS i(s, e, n)
             WHERE NOT v_errors @> jsonb_build_array(jsonb_build_object('index', i.n - 1)))
        SELECT it.idx,
               (SELECT min(s.id) FROM availability_slots s
                 WHERE s.practitioner_id = p_practitioner_id
                   AND tstzrange(s.start_time, s.end_time) && it.span) AS slot_id,
               (SELECT min(o.idx) FROM items o WHERE o.idx < it.idx AND o.span && it.span) AS item
          FROM items it
    LOOP
        IF r.slot_id IS NOT NULL THEN
            v_errors := v_errors || jsonb_build_object('index', r.idx, 'sqlstate', 'MBS02',
                'detail', format('overlaps slot %s of this practitioner', r.slot_id));
        ELSIF r.item IS NOT NULL THEN
            v_errors := v_errors || jsonb_build_object('index', r.idx, 'sqlstate', 'MBS02',
                'detail', format('overlaps item %s of this request', r.item));
        END IF;
    END LOOP;

    IF jsonb_array_length(v_errors) > 0 THEN
        SELECT coalesce(jsonb_agg(e ORDER BY (e ->> 'index')::integer), '[]') INTO v_errors
          FROM jsonb_array_elements(v_errors) e;
        v_first := v_errors -> 0 ->> 'sqlstate';
        RAISE EXCEPTION '% of % slots cannot be created; nothing was created', jsonb_array_length(v_errors), v_count
            USING ERRCODE = v_first, DETAIL = v_errors::text,
                  HINT = 'Fix or drop the items listed in errors and send the whole list again.';
    END IF;

    BEGIN
        RETURN QUERY
            INSERT INTO availability_slots (practitioner_id, start_time, end_time, created_at, updated_at)
            SELECT p_practitioner_id, i.s, i.e, v_now, v_now
              FROM unnest(p_start_times, p_end_times) WITH ORDINALITY AS i(s, e, n)
             ORDER BY i.n
            RETURNING id, practitioner_id, start_time, end_time, status, version;
    EXCEPTION WHEN exclusion_violation THEN
        RAISE EXCEPTION 'the slots overlap another slot of this practitioner'
            USING ERRCODE = 'MBS02', DETAIL = format('practitioner_id=%s', p_practitioner_id),
                  HINT = 'Choose times that do not overlap existing slots.';
    END;
END
$$;

COMMENT ON FUNCTION booking_api.create_slots(bigint, bigint, timestamptz[], timestamptz[]) IS
    'Creates 1 to 500 slots (p_start_times[i], p_end_times[i]) for a practitioner, all or nothing. On failure '
    'raises the SQLSTATE of the first failing item with DETAIL = JSON [{index, sqlstate, detail}] for every failing '
    'item. Acting user must be that practitioner. Errors: MB401, MB403, MB404, MB400, MBS05 invalid_time_range, '
    'MBS04 slot_in_past, MBS02 slot_overlap.';
REVOKE ALL ON FUNCTION booking_api.create_slots(bigint, bigint, timestamptz[], timestamptz[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.create_slots(bigint, bigint, timestamptz[], timestamptz[]) TO medbook_api;
