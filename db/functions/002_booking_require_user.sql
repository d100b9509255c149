/* Why: every booking function takes the acting user's id; an id that names no
   user is an authentication failure (MB401 -> HTTP 401), never a silent no-op. */
CREATE OR REPLACE FUNCTION booking.booking_require_user(p_actor_user_id bigint)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    IF p_actor_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users WHERE id = p_actor_user_id) THEN
        RAISE EXCEPTION 'unknown acting user'
            USING ERRCODE = 'MB401',
                  DETAIL = format('user_id=%s', p_actor_user_id),
                  HINT = 'Pass the users.id of the person acting.';
    END IF;
END
$$;

COMMENT ON FUNCTION booking.booking_require_user(bigint) IS
    'Raises MB401 unless p_actor_user_id names an existing user. Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_require_user(bigint) FROM PUBLIC;
