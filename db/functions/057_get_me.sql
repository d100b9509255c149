/* Why: a token's sub is a users.id, while paths want a patient or a
   practitioner id; this tells the signed-in user which profiles they have. */
CREATE OR REPLACE FUNCTION booking_api.get_me(p_actor_user_id bigint)
RETURNS TABLE (user_id bigint, name text, email text, patient_id bigint, practitioner_id bigint)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    RETURN QUERY
        SELECT u.id::bigint, u.name::text, u.email::text,
               (SELECT pa.id FROM patients pa WHERE pa.user_id = u.id),
               (SELECT pr.id::bigint FROM public.practitioners pr WHERE pr.user_id = u.id)
          FROM public.users u
         WHERE u.id = p_actor_user_id;
END
$$;

COMMENT ON FUNCTION booking_api.get_me(bigint) IS
    'The acting user: id, name, email, and their patient and practitioner ids (NULL when they have none). '
    'Errors: MB401.';
REVOKE ALL ON FUNCTION booking_api.get_me(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.get_me(bigint) TO medbook_api;
