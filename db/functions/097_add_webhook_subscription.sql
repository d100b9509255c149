/* Why: webhook targets are chosen by the owner side (a DBA, `medbook webhooks
   add`), never by API callers: a subscription receives every matching event
   of every patient. The URL must be http(s) without credentials; whether its
   host resolves to a private address is checked by the caller at
   subscription time and by the worker before every attempt (DNS can change),
   both in Python (api/webhook_http.py), since SQL cannot resolve names. With
   no secret a 32-byte one is generated from gen_random_uuid()'s strong
   random source. starts_at_event_id is the readers' horizon now: the new
   subscription gets the events that are not final yet and all later ones,
   never the retained history. */
CREATE OR REPLACE FUNCTION booking_api.add_webhook_subscription(
    p_url         text,
    p_event_types text[] DEFAULT NULL,
    p_secret      text DEFAULT NULL
)
RETURNS TABLE (id bigint, url text, event_types text[], secret text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
DECLARE
    v_types   text[];
    v_unknown text[];
    v_secret  text := p_secret;
    v_key     bytea;
BEGIN
    IF p_url IS NULL OR p_url !~ '^https?://[^/?#@[:space:]]+([/?#][^[:space:]]*)?$' OR char_length(p_url) > 2000 THEN
        RAISE EXCEPTION 'the webhook URL must be an http or https URL without credentials'
            USING ERRCODE = 'MBE02', HINT = 'For example: https://hooks.example.com/medbook';
    END IF;
    IF p_event_types IS NOT NULL THEN
        SELECT array_agg(DISTINCT t ORDER BY t) INTO v_types FROM unnest(p_event_types) t;
        SELECT array_agg(t ORDER BY t) INTO v_unknown
          FROM unnest(v_types) t WHERE t IS NULL OR NOT EXISTS (SELECT 1 FROM event_types et WHERE et.name = t);
        IF v_types IS NULL OR v_unknown IS NOT NULL THEN
            RAISE EXCEPTION 'unknown event type(s): %', coalesce(array_to_string(v_unknown, ', ', 'NULL'), 'none given')
                USING ERRCODE = 'MBE01', HINT = 'The types are the rows of booking.event_types; leave them out for all.';
        END IF;
    END IF;
    IF v_secret IS NULL THEN
        v_secret := 'whsec_' || encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'base64');
    END IF;
    BEGIN
        v_key := decode(substr(v_secret, 7), 'base64');
    EXCEPTION WHEN invalid_parameter_value THEN
        v_key := NULL;
    END;
    IF v_secret !~ '^whsec_[A-Za-z0-9+/]{32,88}={0,2}$' OR octet_length(v_key) NOT BETWEEN 24 AND 64 THEN
        RAISE EXCEPTION 'the webhook secret must be whsec_ followed by 24 to 64 bytes in base64'
            USING ERRCODE = 'MBE03', HINT = 'Leave the secret out to have one generated.';
    END IF;
    RETURN QUERY
        INSERT INTO webhook_subscriptions AS s (url, event_types, secret, starts_at_event_id)
        VALUES (p_url, v_types, v_secret, booking_events_horizon())
        RETURNING s.id, s.url, s.event_types, s.secret;
END
$$;

COMMENT ON FUNCTION booking_api.add_webhook_subscription(text, text[], text) IS
    'Adds a webhook subscription (event types NULL: all; secret NULL: generated) and returns it with its secret. '
    'Owner only. Errors: MBE02 invalid_webhook_url, MBE01 unknown_event_type, MBE03 invalid_webhook_secret.';
REVOKE ALL ON FUNCTION booking_api.add_webhook_subscription(text, text[], text) FROM PUBLIC;
