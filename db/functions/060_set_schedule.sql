/* Why: a practitioner publishes availability once, as weekly rules, instead
   of one request per slot. The rule set is replaced as a whole, given as a
   JSON array (the HTTP body's "rules", and just as easy to type in psql):
     [{"weekday": 1-7 (ISO, Monday = 1), "start": "HH:MM", "end": "HH:MM",
       "slot_minutes": 5-480, "valid_from": "YYYY-MM-DD"?, "valid_until": "YYYY-MM-DD"?}]
   Malformed input (a wrong type, an unknown key, a weekday or length out of
   range, a time that is not HH:MM such as 24:00) is MB400; well-formed rules
   that cannot be a schedule are MBV01 (invalid_schedule): an end not after
   the start, a rule too short for one slot, a validity that ends before it
   begins, or two rules of one weekday that overlap in time and validity
   (backed by schedule_rules_no_overlap). Rules never touch existing slots:
   publish_schedule() creates slots from them, the bulk delete removes them.
   Takes the practitioner's exclusive lock, so a publish sees the old rule
   set or the new one, never half of each. */
CREATE TYPE booking_api.schedule_rule AS (
    weekday      bigint,
    local_start  time,
    local_end    time,
    slot_minutes bigint,
    valid_from   date,
    valid_until  date
);
COMMENT ON TYPE booking_api.schedule_rule IS
    'A weekly schedule rule: on ISO weekday (1 = Monday), slots of slot_minutes from local_start while they end by '
    'local_end, wall-clock times in the practitioner''s zone, on local dates valid_from to valid_until (NULL: open).';

CREATE OR REPLACE FUNCTION booking_api.set_schedule(
    p_actor_user_id   bigint,
    p_practitioner_id bigint,
    p_rules           jsonb
)
RETURNS SETOF booking_api.schedule_rule
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_rule     jsonb;
    v_index    integer;
    v_key      text;
    v_value    jsonb;
    v_weekdays bigint[] := '{}'::bigint[];
    v_starts   time[] := '{}'::time[];
    v_ends     time[] := '{}'::time[];
    v_minutes  bigint[] := '{}'::bigint[];
    v_froms    date[] := '{}'::date[];
    v_untils   date[] := '{}'::date[];
    v_date     date;
    v_clash    record;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner(p_actor_user_id, p_practitioner_id);
    IF p_rules IS NULL OR jsonb_typeof(p_rules) <> 'array' THEN
        RAISE EXCEPTION 'rules must be a JSON array'
            USING ERRCODE = 'MB400', HINT = 'Send [] to clear the schedule.';
    END IF;
    IF jsonb_array_length(p_rules) > 200 THEN
        RAISE EXCEPTION 'a schedule has at most 200 rules'
            USING ERRCODE = 'MB400', DETAIL = format('rules=%s', jsonb_array_length(p_rules));
    END IF;

    FOR v_rule, v_index IN SELECT e, i - 1 FROM jsonb_array_elements(p_rules) WITH ORDINALITY AS r(e, i) LOOP
        IF jsonb_typeof(v_rule) <> 'object' THEN
            RAISE EXCEPTION 'rules[%] must be an object', v_index USING ERRCODE = 'MB400';
        END IF;
        FOR v_key IN SELECT jsonb_object_keys(v_rule) LOOP
            IF v_key NOT IN ('weekday', 'start', 'end', 'slot_minutes', 'valid_from', 'valid_until') THEN
                RAISE EXCEPTION 'rules[%] has an unknown field', v_index
                    USING ERRCODE = 'MB400', DETAIL = format('field=%s', left(v_key, 64)),
                          HINT = 'Fields: weekday, start, end, slot_minutes, valid_from, valid_until.';
            END IF;
        END LOOP;

        -- Integers as JSON Schema counts them: 3 and 3.0 alike, not 3.5.
        v_value := v_rule -> 'weekday';
        IF v_value IS NULL OR jsonb_typeof(v_value) <> 'number' OR (v_value::text)::numeric NOT BETWEEN 1 AND 7
           OR (v_value::text)::numeric <> trunc((v_value::text)::numeric) THEN
            RAISE EXCEPTION 'rules[%].weekday must be an integer from 1 (Monday) to 7 (Sunday)', v_index
                USING ERRCODE = 'MB400';
        END IF;
        v_weekdays := v_weekdays || (v_value::text)::numeric::bigint;

        FOREACH v_key IN ARRAY ARRAY['start', 'end'] LOOP
            v_value := v_rule -> v_key;
            IF v_value IS NULL OR jsonb_typeof(v_value) <> 'string'
               OR v_value #>> '{}' !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' THEN
                RAISE EXCEPTION 'rules[%].% must be a local time from 00:00 to 23:59, as HH:MM', v_index, v_key
                    USING ERRCODE = 'MB400';
            END IF;
        END LOOP;
        v_starts := v_starts || (v_rule ->> 'start')::time;
        v_ends := v_ends || (v_rule ->> 'end')::time;

        v_value := v_rule -> 'slot_minutes';
        IF v_value IS NULL OR jsonb_typeof(v_value) <> 'number' OR (v_value::text)::numeric NOT BETWEEN 5 AND 480
           OR (v_value::text)::numeric <> trunc((v_value::text)::numeric) THEN
            RAISE EXCEPTION 'rules[%].slot_minutes must be an integer from 5 to 480', v_index
                USING ERRCODE = 'MB400';
        END IF;
        v_minutes := v_minutes || (v_value::text)::numeric::bigint;

        FOREACH v_key IN ARRAY ARRAY['valid_from', 'valid_until'] LOOP
            v_value := v_rule -> v_key;
            v_date := NULL;
            IF v_value IS NOT NULL AND jsonb_typeof(v_value) <> 'null' THEN
                IF jsonb_typeof(v_value) <> 'string' OR v_value #>> '{}' !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
                    RAISE EXCEPTION 'rules[%].% must be a date as YYYY-MM-DD', v_index, v_key USING ERRCODE = 'MB400';
                END IF;
                BEGIN
                    v_date := (v_value #>> '{}')::date;
                EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
                    RAISE EXCEPTION 'rules[%].% is not a valid date', v_index, v_key USING ERRCODE = 'MB400';
                END;
            END IF;
            IF v_key = 'valid_from' THEN
                v_froms := v_froms || v_date;
            ELSE
                v_untils := v_untils || v_date;
            END IF;
        END LOOP;

        IF v_ends[v_index + 1] <= v_starts[v_index + 1] THEN
            RAISE EXCEPTION 'rules[%] ends at or before it starts', v_index
                USING ERRCODE = 'MBV01', HINT = 'A rule runs within one day: its end is after its start.';
        END IF;
        IF v_ends[v_index + 1] - v_starts[v_index + 1] < v_minutes[v_index + 1] * interval '1 minute' THEN
            RAISE EXCEPTION 'rules[%] is too short for one slot of % minutes', v_index, v_minutes[v_index + 1]
                USING ERRCODE = 'MBV01';
        END IF;
        IF v_untils[v_index + 1] < v_froms[v_index + 1] THEN
            RAISE EXCEPTION 'rules[%] has valid_until before valid_from', v_index USING ERRCODE = 'MBV01';
        END IF;
    END LOOP;

    SELECT a.i - 1 AS first, b.i - 1 AS second INTO v_clash
      FROM unnest(v_weekdays, v_starts, v_ends, v_froms, v_untils) WITH ORDINALITY AS a(w, s, e, f, u, i)
      JOIN unnest(v_weekdays, v_starts, v_ends, v_froms, v_untils) WITH ORDINALITY AS b(w, s, e, f, u, i)
        ON a.i < b.i AND a.w = b.w AND a.s < b.e AND b.s < a.e
       AND daterange(a.f, a.u, '[]') && daterange(b.f, b.u, '[]')
     ORDER BY b.i, a.i
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'rules[%] and rules[%] overlap on the same weekday', v_clash.first, v_clash.second
            USING ERRCODE = 'MBV01',
                  HINT = 'Rules of one weekday must not overlap in time while both are valid.';
    END IF;

    PERFORM booking_lock_practitioner(p_practitioner_id, true);  -- see 006_booking_lock_practitioner.sql
    DELETE FROM schedule_rules r WHERE r.practitioner_id = p_practitioner_id;
    BEGIN
        INSERT INTO schedule_rules (practitioner_id, weekday, local_start, local_end, slot_minutes,
                                    valid_from, valid_until)
        SELECT p_practitioner_id, w, s, e, m, f, u
          FROM unnest(v_weekdays, v_starts, v_ends, v_minutes, v_froms, v_untils) AS x(w, s, e, m, f, u);
    EXCEPTION WHEN exclusion_violation THEN
        RAISE EXCEPTION 'two rules overlap on the same weekday'
            USING ERRCODE = 'MBV01', DETAIL = format('practitioner_id=%s', p_practitioner_id);
    END;
    RETURN QUERY
        SELECT r.weekday, r.local_start, r.local_end, r.slot_minutes, r.valid_from, r.valid_until
          FROM schedule_rules r
         WHERE r.practitioner_id = p_practitioner_id
         ORDER BY r.weekday, r.local_start, r.valid_from NULLS FIRST;
END
$$;

COMMENT ON FUNCTION booking_api.set_schedule(bigint, bigint, jsonb) IS
    'Replaces a practitioner''s weekly schedule rules with p_rules (a JSON array of {weekday, start, end, '
    'slot_minutes, valid_from?, valid_until?}) and returns them as stored. Acting user must be that practitioner. '
    'Never touches slots. Errors: MB401, MB403, MB404, MB400, MBV01 invalid_schedule.';
REVOKE ALL ON FUNCTION booking_api.set_schedule(bigint, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.set_schedule(bigint, bigint, jsonb) TO medbook_api;
