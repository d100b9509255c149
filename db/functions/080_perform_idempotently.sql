/* Why: a client whose connection drops after a booking cannot tell "you have
   it" from "someone else has it" by retrying the plain call. With an
   idempotency key the outcome of the first execution is stored and a retry
   gets it back instead of executing again.

   One call, one transaction:
   1. The key (1-255 printable ASCII, scoped to the acting user) is claimed with
      pg_try_advisory_xact_lock, which never waits: if another transaction is
      executing a request with the same user and key, this one fails at once
      with MBI02 idempotency_key_in_use (never a second execution, never a wait).
   2. A stored, unexpired outcome for the key is returned as it is (replayed),
      after checking that the request is the same: same operation, same
      arguments (compared as a SHA-256 of their canonical form, so e.g. two
      spellings of one instant are the same request). Anything else is MBI01
      idempotency_key_reused.
   3. Otherwise the operation (book_slot, cancel_appointment, reschedule_appointment,
      complete_appointment, mark_no_show, create_slot, the bulk create_slots, or
      book_slot_expecting, the FHIR facade's create)
      runs inside a BEGIN ... EXCEPTION block, i.e. a
      subtransaction. If a booking rule refuses it (a SQLSTATE of class MB, all
      of which are client errors, 4xx), the subtransaction -- the failed change
      -- is rolled back and the refusal is what gets stored and returned. Any
      other error (a lock or statement timeout, a lost connection, a bug) is
      re-raised: the whole transaction, key included, rolls back, so server
      errors are never stored and a retry executes again.
   4. The outcome is inserted into idempotency_keys in the same transaction as
      the change itself: a crash leaves both or neither.
   Outcomes are kept 24 hours (expires_at); an expired one is replaced by the
   next request with its key, and purge_idempotency_keys() deletes them. */
CREATE OR REPLACE FUNCTION booking_api.perform_idempotently(
    p_actor_user_id   bigint,
    p_idempotency_key text,
    p_operation       text,
    p_arguments       jsonb
)
RETURNS TABLE (replayed boolean, result jsonb, error_sqlstate text, error_message text, error_hint text,
               error_detail text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_now            timestamptz := booking_api.booking_now();
    v_allowed        text[];
    v_slot_id        bigint;
    v_patient_id     bigint;
    v_appointment_id bigint;
    v_practitioner_id bigint;
    v_start_time     timestamptz;
    v_end_time       timestamptz;
    v_start_times    timestamptz[];
    v_end_times      timestamptz[];
    v_reason         text;
    v_digest         bytea;
    v_stored         idempotency_keys;
    v_result         jsonb;
    v_state          text;
    v_message        text;
    v_hint           text;
    v_detail         text;
BEGIN
    PERFORM booking_require_user(p_actor_user_id);
    IF p_idempotency_key IS NULL OR p_idempotency_key !~ '^[ -~]{1,255}$' THEN
        RAISE EXCEPTION 'an idempotency key is 1 to 255 printable ASCII characters'
            USING ERRCODE = 'MB400', HINT = 'Use a fresh random value, such as a UUID, per request.';
    END IF;
    v_allowed := CASE p_operation
        WHEN 'book_slot' THEN ARRAY['slot_id']
        WHEN 'cancel_appointment' THEN ARRAY['appointment_id', 'reason']
        WHEN 'reschedule_appointment' THEN ARRAY['appointment_id', 'slot_id']
        WHEN 'complete_appointment' THEN ARRAY['appointment_id']
        WHEN 'mark_no_show' THEN ARRAY['appointment_id']
        WHEN 'create_slot' THEN ARRAY['practitioner_id', 'start_time', 'end_time']
        WHEN 'create_slots' THEN ARRAY['practitioner_id', 'start_times', 'end_times']
        WHEN 'book_slot_expecting' THEN ARRAY['slot_id', 'patient_id', 'practitioner_id', 'start_time', 'end_time']
    END;
    IF v_allowed IS NULL THEN
        RAISE EXCEPTION 'this operation does not take an idempotency key'
            USING ERRCODE = 'MB400', DETAIL = format('operation=%s', left(p_operation, 64));
    END IF;
    IF jsonb_typeof(p_arguments) IS DISTINCT FROM 'object'
       OR EXISTS (SELECT 1 FROM jsonb_object_keys(p_arguments) k WHERE k <> ALL (v_allowed)) THEN
        RAISE EXCEPTION 'the arguments must be an object with the operation''s parameters only'
            USING ERRCODE = 'MB400', DETAIL = format('operation=%s parameters=%s', p_operation, v_allowed);
    END IF;

    v_slot_id := (p_arguments ->> 'slot_id')::bigint;
    v_patient_id := (p_arguments ->> 'patient_id')::bigint;
    v_appointment_id := (p_arguments ->> 'appointment_id')::bigint;
    v_practitioner_id := (p_arguments ->> 'practitioner_id')::bigint;
    v_start_time := (p_arguments ->> 'start_time')::timestamptz;
    v_end_time := (p_arguments ->> 'end_time')::timestamptz;
    v_reason := p_arguments ->> 'reason';
    IF p_operation = 'create_slots' THEN
        IF jsonb_typeof(p_arguments -> 'start_times') IS DISTINCT FROM 'array'
           OR jsonb_typeof(p_arguments -> 'end_times') IS DISTINCT FROM 'array' THEN
            RAISE EXCEPTION 'start_times and end_times must be arrays' USING ERRCODE = 'MB400';
        END IF;
        v_start_times := ARRAY(SELECT t::timestamptz FROM jsonb_array_elements_text(p_arguments -> 'start_times') t);
        v_end_times := ARRAY(SELECT t::timestamptz FROM jsonb_array_elements_text(p_arguments -> 'end_times') t);
    END IF;
    -- patient_id is appended only when given (book_slot_expecting), so the digests of the
    -- other operations, and of records stored before it existed, stay what they were.
    v_digest := sha256(convert_to((jsonb_build_array(
        p_operation, v_slot_id, v_appointment_id, v_practitioner_id,
        extract(epoch FROM v_start_time), extract(epoch FROM v_end_time), v_reason,
        (SELECT jsonb_agg(extract(epoch FROM t)) FROM unnest(v_start_times) t),
        (SELECT jsonb_agg(extract(epoch FROM t)) FROM unnest(v_end_times) t))
        || CASE WHEN v_patient_id IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(v_patient_id) END)::text,
        'UTF8'));

    IF NOT pg_try_advisory_xact_lock(hashtextextended(p_actor_user_id::text || ' ' || p_idempotency_key, 73)) THEN
        RAISE EXCEPTION 'a request with this idempotency key is still being processed'
            USING ERRCODE = 'MBI02', DETAIL = format('user_id=%s', p_actor_user_id),
                  HINT = 'Retry once it has finished to get its result.';
    END IF;

    SELECT * INTO v_stored FROM idempotency_keys k
     WHERE k.user_id = p_actor_user_id AND k.idempotency_key = p_idempotency_key AND k.expires_at > v_now;
    IF FOUND THEN
        IF v_stored.operation <> p_operation OR v_stored.request_digest <> v_digest THEN
            RAISE EXCEPTION 'this idempotency key was used for a different request'
                USING ERRCODE = 'MBI01',
                      DETAIL = format('user_id=%s operation=%s', p_actor_user_id, v_stored.operation),
                      HINT = 'Use a new key for a new request.';
        END IF;
        RETURN QUERY SELECT true, v_stored.result, v_stored.error_sqlstate, v_stored.error_message,
                            v_stored.error_hint, v_stored.error_detail;
        RETURN;
    END IF;

    BEGIN
        CASE p_operation
            WHEN 'book_slot' THEN
                v_result := to_jsonb(booking_api.book_slot(p_actor_user_id, v_slot_id));
            WHEN 'cancel_appointment' THEN
                v_result := to_jsonb(booking_api.cancel_appointment(p_actor_user_id, v_appointment_id, v_reason));
            WHEN 'reschedule_appointment' THEN
                v_result := to_jsonb(booking_api.reschedule_appointment(p_actor_user_id, v_appointment_id, v_slot_id));
            WHEN 'complete_appointment' THEN
                v_result := to_jsonb(booking_api.complete_appointment(p_actor_user_id, v_appointment_id));
            WHEN 'mark_no_show' THEN
                v_result := to_jsonb(booking_api.mark_no_show(p_actor_user_id, v_appointment_id));
            WHEN 'create_slot' THEN
                v_result := to_jsonb(booking_api.create_slot(p_actor_user_id, v_practitioner_id, v_start_time,
                                                             v_end_time));
            WHEN 'book_slot_expecting' THEN
                v_result := to_jsonb(booking_api.book_slot_expecting(p_actor_user_id, v_slot_id, v_patient_id,
                                                                     v_practitioner_id, v_start_time, v_end_time));
            WHEN 'create_slots' THEN
                v_result := coalesce((SELECT jsonb_agg(to_jsonb(s) - 'n' ORDER BY s.n)
                                        FROM booking_api.create_slots(p_actor_user_id, v_practitioner_id,
                                                                      v_start_times, v_end_times)
                                             WITH ORDINALITY AS s(id, practitioner_id, start_time, end_time,
                                                                  status, version, n)), '[]');
        END CASE;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_hint = PG_EXCEPTION_HINT,
                                v_detail = PG_EXCEPTION_DETAIL;
        IF v_state NOT LIKE 'MB%' THEN
            RAISE;
        END IF;
        v_result := NULL;
    END;

    -- Only a DETAIL that lists per-item errors (create_slots) is kept: other DETAILs are ids for the log.
    v_detail := CASE WHEN v_detail LIKE '[{%' THEN v_detail END;
    INSERT INTO idempotency_keys AS k (user_id, idempotency_key, operation, request_digest, result,
                                       error_sqlstate, error_message, error_hint, error_detail, created_at, expires_at)
    VALUES (p_actor_user_id, p_idempotency_key, p_operation, v_digest, v_result,
            v_state, v_message, nullif(v_hint, ''), v_detail, v_now, v_now + interval '24 hours')
    ON CONFLICT (user_id, idempotency_key) DO UPDATE
       SET operation = EXCLUDED.operation, request_digest = EXCLUDED.request_digest, result = EXCLUDED.result,
           error_sqlstate = EXCLUDED.error_sqlstate, error_message = EXCLUDED.error_message,
           error_hint = EXCLUDED.error_hint, error_detail = EXCLUDED.error_detail,
           created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
     WHERE k.expires_at <= v_now;
    IF NOT FOUND THEN
        -- Only possible outside READ COMMITTED: a concurrent first execution committed after our snapshot.
        RAISE EXCEPTION 'a request with this idempotency key is still being processed'
            USING ERRCODE = 'MBI02', DETAIL = format('user_id=%s', p_actor_user_id),
                  HINT = 'Retry once it has finished to get its result.';
    END IF;
    RETURN QUERY SELECT false, v_result, v_state, v_message, nullif(v_hint, ''), v_detail;
END
$$;

COMMENT ON FUNCTION booking_api.perform_idempotently(bigint, text, text, jsonb) IS
    'Runs a booking operation (book_slot, cancel_appointment, reschedule_appointment, complete_appointment, '
    'mark_no_show, create_slot, create_slots, book_slot_expecting; p_arguments names its parameters without p_, e.g. {"slot_id": 5}) '
    'at most once '
    'per user and idempotency key: stores its result, or the booking rule that refused it (SQLSTATE class MB), '
    'in the same transaction, and returns the stored outcome (replayed = true) to a retry of the same request. '
    'Refusals are returned, not raised. Errors: MB401, MB400, MBI01 idempotency_key_reused, '
    'MBI02 idempotency_key_in_use.';
REVOKE ALL ON FUNCTION booking_api.perform_idempotently(bigint, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.perform_idempotently(bigint, text, text, jsonb) TO medbook_api;
