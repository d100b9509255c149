/* Why: a practitioner (and the patients browsing them) may read the zone
   their dates are shown in and the cancellation notice that binds patients.
   A practitioner without a settings row has the defaults. */
CREATE OR REPLACE FUNCTION get_booking_settings(
    p_actor_user_id   bigint,
    p_practitioner_id bigint
)
RETURNS practitioner_booking_settings
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_settings practitioner_booking_settings;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner_exists(p_practitioner_id);
    SELECT * INTO v_settings FROM practitioner_booking_settings WHERE practitioner_id = p_practitioner_id;
    IF NOT FOUND THEN
        v_settings := ROW(p_practitioner_id, 'UTC', interval '24 hours', NULL)::practitioner_booking_settings;
    END IF;
    RETURN v_settings;
END
$$;

COMMENT ON FUNCTION get_booking_settings(bigint, bigint) IS
    'A practitioner''s booking time zone and cancellation notice (defaults when never set), to any user. '
    'Errors: MB401, MB404.';
REVOKE ALL ON FUNCTION get_booking_settings(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_booking_settings(bigint, bigint) TO medbook_api;
