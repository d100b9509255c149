/* Why: the directory entry of one practitioner, to any signed-in user: name
   (from users), specialty, bio, booking time zone and the start of the next
   slot they can be booked into (NULL: none). One index probe of
   availability_slots_available_by_start, whatever the number of slots. */
CREATE TYPE booking_api.practitioner AS (
    id                   bigint,
    name                 text,
    specialty            text,
    bio                  text,
    time_zone            text,
    next_available_start timestamptz
);
COMMENT ON TYPE booking_api.practitioner IS
    'A practitioner''s directory entry: name from users, booking time zone, and the start of the next slot '
    'that can be booked (NULL: none).';

CREATE OR REPLACE FUNCTION booking_api.get_practitioner(
    p_actor_user_id   bigint,
    p_practitioner_id bigint
)
RETURNS booking_api.practitioner
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_now          timestamptz := booking_api.booking_now();
    v_practitioner booking_api.practitioner;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    PERFORM booking_require_practitioner_exists(p_practitioner_id);
    SELECT pr.id::bigint, u.name::text, pr.specialty::text, pr.bio::text, coalesce(b.time_zone, 'UTC'),
           (SELECT s.start_time FROM availability_slots s
             WHERE s.practitioner_id = pr.id AND s.status = 'available' AND s.start_time > v_now
             ORDER BY s.start_time LIMIT 1)
      INTO v_practitioner
      FROM public.practitioners pr
      JOIN public.users u ON u.id = pr.user_id
      LEFT JOIN practitioner_booking_settings b ON b.practitioner_id = pr.id
     WHERE pr.id = p_practitioner_id;
    RETURN v_practitioner;
END
$$;

COMMENT ON FUNCTION booking_api.get_practitioner(bigint, bigint) IS
    'A practitioner''s directory entry (name, specialty, bio, time zone, next available start), to any user. '
    'Errors: MB401, MB404.';
REVOKE ALL ON FUNCTION booking_api.get_practitioner(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.get_practitioner(bigint, bigint) TO medbook_api;
