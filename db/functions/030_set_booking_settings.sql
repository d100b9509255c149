/* Why: a practitioner chooses the zone their dates are read in and how much
   notice patients must give to cancel. NULL keeps the current value; both
   NULL is MB400 (nothing to update). */
CREATE OR REPLACE FUNCTION booking_api.set_booking_settings(
    p_actor_user_id       bigint,
    p_practitioner_id     bigint,
    p_time_zone           text DEFAULT NULL,
    p_cancellation_notice interval DEFAULT NULL
)
RETURNS booking_api.booking_settings
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_settings booking_api.booking_settings;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner(p_actor_user_id, p_practitioner_id);
    IF p_time_zone IS NULL AND p_cancellation_notice IS NULL THEN
        RAISE EXCEPTION 'nothing to update'
            USING ERRCODE = 'MB400', HINT = 'Give a time zone, a cancellation notice or both.';
    END IF;
    IF p_time_zone IS NOT NULL AND NOT EXISTS (SELECT 1 FROM time_zones WHERE name = p_time_zone) THEN
        RAISE EXCEPTION 'unknown time zone'
            USING ERRCODE = 'MB400', DETAIL = format('time_zone=%s', left(p_time_zone, 64)),
                  HINT = 'Use an IANA name such as Europe/London.';
    END IF;
    IF p_cancellation_notice < interval '0' OR p_cancellation_notice > interval '30 days' THEN
        RAISE EXCEPTION 'cancellation notice must be between 0 and 30 days'
            USING ERRCODE = 'MB400', DETAIL = format('cancellation_notice=%s', p_cancellation_notice);
    END IF;

    INSERT INTO practitioner_booking_settings AS s (practitioner_id, time_zone, cancellation_notice, updated_at)
    VALUES (p_practitioner_id, coalesce(p_time_zone, 'UTC'),
            coalesce(p_cancellation_notice, interval '24 hours'), now())
    ON CONFLICT (practitioner_id) DO UPDATE
       SET time_zone = coalesce(p_time_zone, s.time_zone),
           cancellation_notice = coalesce(p_cancellation_notice, s.cancellation_notice),
           updated_at = now()
    RETURNING s.practitioner_id, s.time_zone, s.cancellation_notice INTO v_settings;
    RETURN v_settings;
END
$$;

COMMENT ON FUNCTION booking_api.set_booking_settings(bigint, bigint, text, interval) IS
    'Sets a practitioner''s booking time zone and/or cancellation notice (0-30 days). Acting user must be '
    'that practitioner. Errors: MB401, MB403, MB404, MB400.';
REVOKE ALL ON FUNCTION booking_api.set_booking_settings(bigint, bigint, text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.set_booking_settings(bigint, bigint, text, interval) TO medbook_api;
