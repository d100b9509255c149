/* Why: a patient's appointments are health information; every list of them
   (upcoming, by status, history pages) is for that patient alone. MB404 when
   the patient does not exist, MB403 when the actor is someone else. */
CREATE OR REPLACE FUNCTION booking.booking_require_own_patient(
    p_actor_user_id bigint,
    p_patient_id    bigint
)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_patient_user bigint;
BEGIN
    SELECT user_id INTO v_patient_user FROM patients WHERE id = p_patient_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'patient not found' USING ERRCODE = 'MB404', DETAIL = format('patient_id=%s', p_patient_id);
    END IF;
    IF v_patient_user <> p_actor_user_id THEN
        RAISE EXCEPTION 'patients see only their own appointments'
            USING ERRCODE = 'MB403', DETAIL = format('patient_id=%s user_id=%s', p_patient_id, p_actor_user_id);
    END IF;
END
$$;

COMMENT ON FUNCTION booking.booking_require_own_patient(bigint, bigint) IS
    'Raises MB404 unless the patient exists and MB403 unless the actor is that patient. Internal helper.';
REVOKE ALL ON FUNCTION booking.booking_require_own_patient(bigint, bigint) FROM PUBLIC;
