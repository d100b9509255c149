/* Why: a FHIR client reads the Practitioner a schedule or an appointment
   names. A practitioner's name and specialty are public to every signed-in
   user, as their slots and settings are (patients choose whom to book). */
CREATE OR REPLACE FUNCTION booking_api.read_practitioner(
    p_actor_user_id   bigint,
    p_practitioner_id bigint
)
RETURNS TABLE (id bigint, name text, specialty text)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner_exists(p_practitioner_id);
    RETURN QUERY
        SELECT pr.id::bigint, u.name::text, pr.specialty::text
          FROM public.practitioners pr
          JOIN public.users u ON u.id = pr.user_id
         WHERE pr.id = p_practitioner_id;
END
$$;

COMMENT ON FUNCTION booking_api.read_practitioner(bigint, bigint) IS
    'A practitioner''s name (from users) and specialty, to any user. Errors: MB401, MB404.';
REVOKE ALL ON FUNCTION booking_api.read_practitioner(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.read_practitioner(bigint, bigint) TO medbook_api;
