/* Why: "only the owning practitioner" is checked by create, update and delete
   alike; this helper keeps that rule in one place. */
CREATE OR REPLACE FUNCTION booking.booking_require_practitioner(
    p_actor_user_id   bigint,
    p_practitioner_id bigint
)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_owner_user_id bigint;
BEGIN
    SELECT user_id INTO v_owner_user_id FROM public.practitioners WHERE id = p_practitioner_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'practitioner not found'
            USING ERRCODE = 'MB404', DETAIL = format('practitioner_id=%s', p_practitioner_id);
    END IF;
    IF v_owner_user_id <> p_actor_user_id THEN
        RAISE EXCEPTION 'only that practitioner may do this'
            USING ERRCODE = 'MB403',
                  DETAIL = format('practitioner_id=%s user_id=%s', p_practitioner_id, p_actor_user_id),
                  HINT = 'Sign in as the practitioner who owns the slot.';
    END IF;
END
$$;

COMMENT ON FUNCTION booking.booking_require_practitioner(bigint, bigint) IS
    'Raises MB404 if the practitioner does not exist, MB403 unless the acting user is that practitioner. Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_require_practitioner(bigint, bigint) FROM PUBLIC;
