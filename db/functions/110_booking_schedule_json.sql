/* Why: the payload of schedule.updated is the practitioner's whole weekly
   schedule as GET /v1/practitioners/{id}/schedule shows it ({"rules": [...]},
   api/resources.py schedule_rule(), in get_schedule()'s order), plus the
   practitioner_id, which the REST resource carries in its path and a webhook
   receiver would otherwise not have. */
CREATE OR REPLACE FUNCTION booking.booking_schedule_json(p_practitioner_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    RETURN jsonb_build_object(
        'practitioner_id', p_practitioner_id,
        'rules', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'weekday', r.weekday,
                       'start', to_char(r.local_start, 'HH24:MI'),
                       'end', to_char(r.local_end, 'HH24:MI'),
                       'slot_minutes', r.slot_minutes,
                       'valid_from', to_char(r.valid_from, 'YYYY-MM-DD'),
                       'valid_until', to_char(r.valid_until, 'YYYY-MM-DD'))
                   ORDER BY r.weekday, r.local_start, r.valid_from NULLS FIRST)
              FROM schedule_rules r WHERE r.practitioner_id = p_practitioner_id), '[]'::jsonb));
END
$$;

COMMENT ON FUNCTION booking.booking_schedule_json(bigint) IS
    'A practitioner''s schedule as the REST API shows it, with its practitioner_id (the payload of schedule.updated).';
REVOKE ALL ON FUNCTION booking.booking_schedule_json(bigint) FROM PUBLIC;
