/* Why: calendar apps cannot send a bearer header, so a feed URL carries a
   secret token. Each user has at most one: issuing a new one replaces the
   stored hash, which revokes the old token at once. Only its SHA-256 is
   stored; the token itself (cal_ + 64 hex digits from two gen_random_uuid()
   values, 244 random bits) is returned once, to its owner. Concurrent calls
   serialise on the user's row; the last one's token is the valid one. */
CREATE OR REPLACE FUNCTION booking_api.issue_calendar_token(p_actor_user_id bigint)
RETURNS TABLE (token text, patient_id bigint, practitioner_id bigint)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_token           text := 'cal_' || encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'hex');
    v_patient_id      bigint;
    v_practitioner_id bigint;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    SELECT p.id INTO v_patient_id FROM patients p WHERE p.user_id = p_actor_user_id;
    SELECT p.id INTO v_practitioner_id FROM public.practitioners p WHERE p.user_id = p_actor_user_id;
    IF v_patient_id IS NULL AND v_practitioner_id IS NULL THEN
        RAISE EXCEPTION 'only patients and practitioners have calendar feeds'
            USING ERRCODE = 'MB403', DETAIL = format('user_id=%s', p_actor_user_id),
                  HINT = 'Sign in as a patient or a practitioner.';
    END IF;
    INSERT INTO calendar_tokens AS c (user_id, token_hash, created_at)
    VALUES (p_actor_user_id, sha256(convert_to(v_token, 'UTF8')), booking_api.booking_now())
    ON CONFLICT (user_id) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at;
    RETURN QUERY SELECT v_token, v_patient_id, v_practitioner_id;
END
$$;

COMMENT ON FUNCTION booking_api.issue_calendar_token(bigint) IS
    'Issues the acting user''s calendar feed token (revoking any earlier one) and returns it with the user''s '
    'patient and practitioner ids (NULL when they have none). Errors: MB401, MB403.';
REVOKE ALL ON FUNCTION booking_api.issue_calendar_token(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.issue_calendar_token(bigint) TO medbook_api;
