/* Why: a practitioner chooses the zone their dates are read in and how much
   notice patients must give to cancel. NULL keeps the current value; both
   NULL is MB400 (nothing to update).

   Optimistic concurrency: with p_if_match (the versions the caller last saw,
   from the settings' ETag; 0 for a practitioner who never set them), the change
   is made only while the version is one of them, else MBP01 precondition_failed
   and nothing changes. The version is compared in the UPDATE's WHERE (or the
   upsert's ON CONFLICT ... WHERE), i.e. under the row lock and against the
   latest committed row, so of two editors holding one version exactly one
   succeeds, also when the first of them creates the row. */
CREATE OR REPLACE FUNCTION booking_api.set_booking_settings(
    p_actor_user_id       bigint,
    p_practitioner_id     bigint,
    p_time_zone           text DEFAULT NULL,
    p_cancellation_notice interval DEFAULT NULL,
    p_if_match            bigint[] DEFAULT NULL
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

    IF p_if_match IS NOT NULL AND NOT coalesce(0 = ANY (p_if_match), false) THEN
        -- Only an existing row at a matching version may change.
        UPDATE practitioner_booking_settings s
           SET time_zone = coalesce(p_time_zone, s.time_zone),
               cancellation_notice = coalesce(p_cancellation_notice, s.cancellation_notice),
               updated_at = now()
         WHERE s.practitioner_id = p_practitioner_id AND s.version = ANY (p_if_match)
        RETURNING s.practitioner_id, s.time_zone, s.cancellation_notice, s.version INTO v_settings;
    ELSE
        INSERT INTO practitioner_booking_settings AS s (practitioner_id, time_zone, cancellation_notice, updated_at)
        VALUES (p_practitioner_id, coalesce(p_time_zone, 'UTC'),
                coalesce(p_cancellation_notice, interval '24 hours'), now())
        ON CONFLICT (practitioner_id) DO UPDATE
           SET time_zone = coalesce(p_time_zone, s.time_zone),
               cancellation_notice = coalesce(p_cancellation_notice, s.cancellation_notice),
               updated_at = now()
         WHERE p_if_match IS NULL OR s.version = ANY (p_if_match)
        RETURNING s.practitioner_id, s.time_zone, s.cancellation_notice, s.version INTO v_settings;
    END IF;
    IF v_settings.practitioner_id IS NULL THEN
        PERFORM booking_require_version(
            coalesce((SELECT s.version FROM practitioner_booking_settings s
                       WHERE s.practitioner_id = p_practitioner_id), 0),
            p_if_match, format('practitioner_id=%s', p_practitioner_id));
        RAISE EXCEPTION 'the settings have changed since they were read'
            USING ERRCODE = 'MBP01', DETAIL = format('practitioner_id=%s', p_practitioner_id),
                  HINT = 'Read them again and retry with their current ETag.';
    END IF;
    RETURN v_settings;
END
$$;

COMMENT ON FUNCTION booking_api.set_booking_settings(bigint, bigint, text, interval, bigint[]) IS
    'Sets a practitioner''s booking time zone and/or cancellation notice (0-30 days). Acting user must be '
    'that practitioner. With p_if_match, only while the settings'' version (0: never set) is one of those given. '
    'Errors: MB401, MB403, MB404, MB400, MBP01 precondition_failed.';
REVOKE ALL ON FUNCTION booking_api.set_booking_settings(bigint, bigint, text, interval, bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.set_booking_settings(bigint, bigint, text, interval, bigint[]) TO medbook_api;
