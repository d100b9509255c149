/* Why: a calendar app polls the feed URL with the token as its only
   credential, so this function is the authorisation: the token's SHA-256
   must equal the one stored for the user behind the patient or practitioner
   id, compared in constant time (105). A wrong token, a revoked one, an id
   that does not exist and a user without a token all raise the same MB404
   with the same text, and the comparison runs (against a dummy hash) even
   when there is nothing to compare with, so neither answer nor timing says
   which it was.

   What the feed shows: every appointment of that patient or practitioner
   that starts at most 30 days ago or later, cancelled ones included (STATUS
   CANCELLED with SEQUENCE 1, so calendar apps that saw it confirmed remove
   it). The only personal data is the other party's name: the practitioner's
   feed names the patient, the patient's names the practitioner. No reasons,
   no emails. */
CREATE OR REPLACE FUNCTION booking_api.calendar_feed(
    p_token    text,
    p_kind     text,
    p_owner_id bigint
)
RETURNS TABLE (appointment_id bigint, status text, ical_status text, sequence integer,
               start_time timestamptz, end_time timestamptz, changed_at timestamptz, counterpart_name text)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_user_id bigint;
    v_hash    bytea;
    v_given   bytea := sha256(convert_to(coalesce(p_token, ''), 'UTF8'));
BEGIN
    IF p_kind = 'patient' THEN
        SELECT p.user_id INTO v_user_id FROM patients p WHERE p.id = p_owner_id;
    ELSIF p_kind = 'practitioner' THEN
        SELECT p.user_id INTO v_user_id FROM public.practitioners p WHERE p.id = p_owner_id;
    ELSE
        RAISE EXCEPTION 'the feed kind must be patient or practitioner' USING ERRCODE = 'MB400';
    END IF;
    SELECT c.token_hash INTO v_hash FROM calendar_tokens c WHERE c.user_id = v_user_id;
    IF NOT booking_constant_time_equal(coalesce(v_hash, sha256('\x00'::bytea)), v_given) OR v_hash IS NULL THEN
        RAISE EXCEPTION 'calendar not found'
            USING ERRCODE = 'MB404', HINT = 'Get a feed URL with POST /v1/me/calendar-token.';
    END IF;
    IF p_kind = 'patient' THEN
        RETURN QUERY
            SELECT a.id, a.status,
                   CASE WHEN a.status = 'cancelled' THEN 'CANCELLED' ELSE 'CONFIRMED' END,
                   CASE WHEN a.status = 'cancelled' THEN 1 ELSE 0 END,
                   a.start_time, a.end_time, greatest(a.booked_at, a.cancelled_at, a.attendance_recorded_at), u.name::text
              FROM appointments a
              JOIN public.practitioners pr ON pr.id = a.practitioner_id
              JOIN public.users u ON u.id = pr.user_id
             WHERE a.patient_id = p_owner_id AND a.start_time >= booking_api.booking_now() - interval '30 days'
             ORDER BY a.start_time, a.id;
    ELSE
        RETURN QUERY
            SELECT a.id, a.status,
                   CASE WHEN a.status = 'cancelled' THEN 'CANCELLED' ELSE 'CONFIRMED' END,
                   CASE WHEN a.status = 'cancelled' THEN 1 ELSE 0 END,
                   a.start_time, a.end_time, greatest(a.booked_at, a.cancelled_at, a.attendance_recorded_at), u.name::text
              FROM appointments a
              JOIN patients pa ON pa.id = a.patient_id
              JOIN public.users u ON u.id = pa.user_id
             WHERE a.practitioner_id = p_owner_id AND a.start_time >= booking_api.booking_now() - interval '30 days'
             ORDER BY a.start_time, a.id;
    END IF;
END
$$;

COMMENT ON FUNCTION booking_api.calendar_feed(text, text, bigint) IS
    'The appointments of a patient''s or practitioner''s calendar feed (from 30 days ago on, cancelled ones '
    'included) if p_token is that user''s current feed token; the other party''s name only. '
    'Errors: MB400 (kind), MB404 (anything else wrong, always alike).';
REVOKE ALL ON FUNCTION booking_api.calendar_feed(text, text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.calendar_feed(text, text, bigint) TO medbook_api;
