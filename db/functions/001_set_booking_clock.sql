/* Why: tests and demos need to stand at a chosen instant. SECURITY INVOKER:
   it writes booking_clock with the caller's own rights, so only medbook_owner
   (and superusers) can move the clock. NULL releases it back to now(). */
CREATE OR REPLACE FUNCTION booking.set_booking_clock(p_at timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    IF p_at IS NULL THEN
        DELETE FROM booking_clock;
    ELSE
        INSERT INTO booking_clock (id, frozen_at) VALUES (true, p_at)
        ON CONFLICT (id) DO UPDATE SET frozen_at = EXCLUDED.frozen_at;
    END IF;
    RETURN booking_api.booking_now();
END
$$;

COMMENT ON FUNCTION booking.set_booking_clock(timestamptz) IS
    'Freezes the booking clock at p_at (NULL: back to the real time). Owner only; for tests and demos.';
REVOKE ALL ON FUNCTION booking.set_booking_clock(timestamptz) FROM PUBLIC;
