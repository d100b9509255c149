/* Why: a FHIR client reads the Patient an appointment names. A patient's name
   and email are personal data, so the rule is the appointments' rule: the
   patient themself, or a practitioner who has (or had) an appointment with
   them, in any status; anyone else MB403 (ids are sequential, so a 403 says
   only that the id exists). */
CREATE TYPE booking_api.patient AS (
    id    bigint,
    name  text,
    email text
);
COMMENT ON TYPE booking_api.patient IS
    'A patient as they and their practitioners see them: name and email from users.';

CREATE OR REPLACE FUNCTION booking_api.get_patient(
    p_actor_user_id bigint,
    p_patient_id    bigint
)
RETURNS booking_api.patient
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_patient booking_api.patient;
    v_user_id bigint;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    SELECT pa.id, u.name::text, u.email::text, pa.user_id
      INTO v_patient.id, v_patient.name, v_patient.email, v_user_id
      FROM patients pa
      JOIN public.users u ON u.id = pa.user_id
     WHERE pa.id = p_patient_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'patient not found' USING ERRCODE = 'MB404', DETAIL = format('patient_id=%s', p_patient_id);
    END IF;
    IF v_user_id <> p_actor_user_id
       AND NOT EXISTS (SELECT 1 FROM appointments a
                         JOIN public.practitioners pr ON pr.id = a.practitioner_id
                        WHERE a.patient_id = p_patient_id AND pr.user_id = p_actor_user_id) THEN
        RAISE EXCEPTION 'only the patient and their practitioners may read a patient'
            USING ERRCODE = 'MB403', DETAIL = format('patient_id=%s user_id=%s', p_patient_id, p_actor_user_id);
    END IF;
    RETURN v_patient;
END
$$;

COMMENT ON FUNCTION booking_api.get_patient(bigint, bigint) IS
    'A patient''s name and email, to the patient and to practitioners they have (or had) an appointment with. '
    'Errors: MB401, MB403, MB404.';
REVOKE ALL ON FUNCTION booking_api.get_patient(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.get_patient(bigint, bigint) TO medbook_api;
