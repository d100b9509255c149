/* Why: reads about a practitioner (their free slots, their settings) are open
   to every user, but must name a practitioner that exists. */
CREATE OR REPLACE FUNCTION booking.booking_require_practitioner_exists(p_practitioner_id bigint)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM public.practitioners WHERE id = p_practitioner_id) THEN
        RAISE EXCEPTION 'practitioner not found'
            USING ERRCODE = 'MB404', DETAIL = format('practitioner_id=%s', p_practitioner_id);
    END IF;
END
$$;

COMMENT ON FUNCTION booking.booking_require_practitioner_exists(bigint) IS
    'Raises MB404 unless the practitioner exists. Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_require_practitioner_exists(bigint) FROM PUBLIC;
