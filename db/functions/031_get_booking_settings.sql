/* Why: a practitioner (and the patients browsing them) may read the zone
   their dates are shown in and the cancellation notice that binds patients.
   A practitioner without a settings row has the defaults, at version 0 (the
   version is the settings' ETag). */
CREATE OR REPLACE FUNCTION booking_api.get_booking_settings(
    p_actor_user_id   bigint,
    p_practitioner_id bigint
)
RETURNS booking_api.booking_settings
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_settings booking_api.booking_settings;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner_exists(p_practitioner_id);
    SELECT s.practitioner_id, s.time_zone, s.cancellation_notice, s.version INTO v_settings
      FROM practitioner_booking_settings s WHERE s.practitioner_id = p_practitioner_id;
    IF NOT FOUND THEN
        v_settings := ROW(p_practitioner_id, 'UTC', interval '24 hours', 0)::booking_api.booking_settings;
    END IF;
    RETURN v_settings;
END
$$;

COMMENT ON FUNCTION booking_api.get_booking_settings(bigint, bigint) IS
    'A practitioner''s booking time zone and cancellation notice (defaults when never set), to any user. '
    'Errors: MB401, MB404.';
REVOKE ALL ON FUNCTION booking_api.get_booking_settings(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.get_booking_settings(bigint, bigint) TO medbook_api;
