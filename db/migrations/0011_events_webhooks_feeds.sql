-- Tell the rest of the world (issue 11): a transactional event log, signed
-- webhooks and calendar feeds.
--
--   events                 one row per change of booking state (slots, appointments,
--                          time off, schedules), written by the triggers below in the
--                          same transaction as the change, whoever made it (the API,
--                          psql, another service);
--   event_types            the vocabulary of events.type;
--   webhook_subscriptions  owner-managed targets of signed POSTs;
--   webhook_deliveries     one row per (subscription, event): the delivery state;
--   webhook_attempts       every HTTP attempt, for a DBA to read;
--   webhook_dispatch       the fan-out cursor over the event log (one row);
--   calendar_tokens        the hash of each user's calendar feed token.
--
-- Roles: medbook_events may read the event log through
-- booking_api.read_booking_events() and nothing else; medbook_webhooks runs the
-- delivery worker's functions and nothing else.
--
-- Event ids carry their commit order (docs/DESIGN.md, section 4, "A cursor never
-- skips an event"): id = (inserting transaction's xid8) * 2^20 + n, n counting
-- the transaction's events from 0, and readers see only ids below the oldest
-- transaction still running. The trigger functions live here, as all trigger
-- functions do (db/CONVENTIONS.md); the JSON shapes they write are the
-- functions of db/functions/090-092, re-created by every migrate.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'medbook_events') THEN
        CREATE ROLE medbook_events NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'medbook_webhooks') THEN
        CREATE ROLE medbook_webhooks NOLOGIN;
    END IF;
END
$$;

SET LOCAL ROLE medbook_owner;

CREATE TABLE booking.event_types (
    name        text PRIMARY KEY,
    description text NOT NULL,
    CONSTRAINT event_types_name_format CHECK (name ~ '^[a-z][a-z_]*\.[a-z][a-z_]*$')
);
COMMENT ON TABLE booking.event_types IS
    'The types an event can have (resource.change, e.g. appointment.booked); subscriptions may only name these.';

INSERT INTO booking.event_types (name, description) VALUES
    ('slot.created', 'A slot was created; data: the slot.'),
    ('slot.updated', 'A slot was moved or resized; data: the slot after the change.'),
    ('slot.deleted', 'A slot was deleted; data: the slot as it was.'),
    ('appointment.booked', 'An appointment was booked (also the new appointment of a reschedule); data: the appointment.'),
    ('appointment.cancelled', 'An appointment was cancelled; data: the appointment after the change.'),
    ('appointment.rescheduled', 'An appointment was moved to another slot: data: the old, now cancelled appointment, '
                                'whose rescheduled_to names the new one (which has its own appointment.booked).'),
    ('appointment.completed', 'The practitioner recorded that the appointment took place; data: the appointment.'),
    ('appointment.no_show', 'The practitioner recorded that the patient did not come; data: the appointment.'),
    ('time_off.created', 'A practitioner took time off; data: the time off (its free slots inside it are deleted, '
                         'each with slot.deleted).'),
    ('time_off.updated', 'A time off was changed (only by writing the table directly); data: the time off after it.'),
    ('time_off.deleted', 'A time off was withdrawn; data: the time off as it was.'),
    ('schedule.updated', 'A practitioner''s weekly schedule changed; data: {"practitioner_id", "rules"}, the whole '
                         'schedule as GET /v1/practitioners/{id}/schedule shows it. One event per transaction and '
                         'practitioner. Publishing is told by its slot.created events.');

CREATE TABLE booking.events (
    id              bigint PRIMARY KEY,
    type            text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    practitioner_id bigint,
    patient_id      bigint,
    slot_id         bigint,
    appointment_id  bigint,
    payload         jsonb NOT NULL,
    CONSTRAINT events_payload_object CHECK (jsonb_typeof(payload) = 'object')
);
COMMENT ON TABLE booking.events IS
    'The event log: one row per change of booking state, in the transaction of the change. Read it with '
    'booking_api.read_booking_events(), never directly: only that function knows which ids are final.';
COMMENT ON COLUMN booking.events.id IS
    'xid8 of the inserting transaction * 2^20 + the event''s number within it; assigned by trigger '
    'events_assign_id. Ordering by id is ordering by transaction, then by event.';
COMMENT ON COLUMN booking.events.type IS 'An event_types.name (checked by events_assign_id, without a foreign key lock).';
COMMENT ON COLUMN booking.events.payload IS 'The resource as the REST API shows it (data of a webhook).';
COMMENT ON COLUMN booking.events.practitioner_id IS 'No foreign keys: events outlive the rows they describe.';
CREATE INDEX events_by_occurred_at ON booking.events (occurred_at);

CREATE TABLE booking.webhook_subscriptions (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url                text NOT NULL,
    event_types        text[],
    secret             text NOT NULL,
    enabled            boolean NOT NULL DEFAULT true,
    disabled_reason    text,
    starts_at_event_id bigint NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_subscriptions_url_format CHECK (
        url ~ '^https?://[^/?#@[:space:]]+([/?#][^[:space:]]*)?$' AND char_length(url) <= 2000),
    CONSTRAINT webhook_subscriptions_event_types_nonempty CHECK (
        event_types IS NULL OR (cardinality(event_types) > 0 AND array_position(event_types, NULL) IS NULL)),
    CONSTRAINT webhook_subscriptions_secret_format CHECK (secret ~ '^whsec_[A-Za-z0-9+/]{32,88}={0,2}$'),
    CONSTRAINT webhook_subscriptions_disabled_reason CHECK (enabled OR disabled_reason IS NOT NULL)
);
COMMENT ON TABLE booking.webhook_subscriptions IS
    'Where the delivery worker POSTs events (Standard Webhooks). Managed by the owner side only: the secret '
    'signs every delivery and is readable by medbook_owner and the worker''s functions alone.';
COMMENT ON COLUMN booking.webhook_subscriptions.event_types IS 'Types to deliver; NULL: every type.';
COMMENT ON COLUMN booking.webhook_subscriptions.secret IS 'whsec_ + base64 of the HMAC-SHA256 key.';
COMMENT ON COLUMN booking.webhook_subscriptions.starts_at_event_id IS
    'The subscription receives events from this id on: the readers'' horizon when it was created.';

CREATE TABLE booking.webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id  bigint NOT NULL REFERENCES booking.webhook_subscriptions (id) ON DELETE CASCADE,
    event_id         bigint NOT NULL REFERENCES booking.events (id) ON DELETE CASCADE,
    status           text NOT NULL DEFAULT 'pending',
    attempts         bigint NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    leased_until     timestamptz,
    lease_token      uuid,
    first_attempt_at timestamptz,
    last_attempt_at  timestamptz,
    last_status_code bigint,
    last_error       text,
    finished_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_status_check CHECK (status IN ('pending', 'delivered', 'failed')),
    CONSTRAINT webhook_deliveries_once UNIQUE (subscription_id, event_id),
    CONSTRAINT webhook_deliveries_finished CHECK ((status = 'pending') = (finished_at IS NULL)),
    CONSTRAINT webhook_deliveries_lease CHECK ((leased_until IS NULL) = (lease_token IS NULL))
);
COMMENT ON TABLE booking.webhook_deliveries IS
    'One event to one subscription: pending until a 2xx (delivered) or until the retry window is over or the '
    'target answered 410 (failed). A worker leases the head of a subscription''s pending deliveries, in event order.';
COMMENT ON COLUMN booking.webhook_deliveries.leased_until IS
    'Set while a worker is delivering; another worker may take the delivery over only after this instant.';
COMMENT ON COLUMN booking.webhook_deliveries.next_attempt_at IS 'Not retried before this instant (backoff with jitter).';
CREATE INDEX webhook_deliveries_pending ON booking.webhook_deliveries (subscription_id, event_id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_event ON booking.webhook_deliveries (event_id);

CREATE TABLE booking.webhook_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES booking.webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL,
    duration_ms  bigint NOT NULL,
    status_code  bigint,
    error        text,
    worker       text NOT NULL,
    CONSTRAINT webhook_attempts_outcome CHECK (status_code IS NOT NULL OR error IS NOT NULL),
    CONSTRAINT webhook_attempts_duration CHECK (duration_ms >= 0),
    CONSTRAINT webhook_attempts_error_length CHECK (char_length(error) <= 1000)
);
COMMENT ON TABLE booking.webhook_attempts IS
    'Every HTTP attempt of a delivery: the status code (NULL when no response came), how long it took, the error.';
COMMENT ON COLUMN booking.webhook_attempts.worker IS 'host:pid of the worker that made the attempt.';
CREATE INDEX webhook_attempts_by_delivery ON booking.webhook_attempts (delivery_id, id);

CREATE TABLE booking.webhook_dispatch (
    id            boolean PRIMARY KEY DEFAULT true,
    last_event_id bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_dispatch_single_row CHECK (id)
);
COMMENT ON TABLE booking.webhook_dispatch IS
    'The fan-out cursor: events up to last_event_id have their deliveries. One row; a worker fans out under its lock.';
INSERT INTO booking.webhook_dispatch DEFAULT VALUES;

CREATE TABLE booking.calendar_tokens (
    user_id    bigint PRIMARY KEY REFERENCES public.users (id) ON DELETE RESTRICT,
    token_hash bytea NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT calendar_tokens_hash_length CHECK (octet_length(token_hash) = 32)
);
COMMENT ON TABLE booking.calendar_tokens IS
    'A user''s calendar feed token, as its SHA-256 only; issuing a new one replaces (revokes) the old.';

-- Trigger functions ----------------------------------------------------------

CREATE FUNCTION booking.booking_assign_event_id() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Gives every event its id: the inserting transaction's xid8 * 2^20 + the
   number of events the transaction wrote before it. A reader that only
   returns ids below (oldest running xid) * 2^20 therefore never returns an
   id above one that can still commit (DESIGN.md section 4). Checks the type
   against event_types (a lookup, not a foreign key: a key-share lock on one
   hot event_types row per booking would be contention for nothing). No
   NOTIFY here: a transaction that notifies takes PostgreSQL's one notify lock
   from pre-commit until its commit is durable, which would serialise every
   booking's commit; booking_api.notify_booking_events() relays instead. */
DECLARE
    v_xid  bigint := pg_current_xact_id()::text::bigint;
    v_base bigint;
    v_last bigint;
BEGIN
    IF v_xid >= 8796093022208 THEN  -- 2^43: the id would not fit a bigint
        RAISE EXCEPTION 'transaction id % is too large for event ids', v_xid
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM event_types WHERE name = NEW.type) THEN
        RAISE EXCEPTION 'unknown event type %', NEW.type
            USING ERRCODE = 'MBE01', HINT = 'Add the type to booking.event_types in a migration.';
    END IF;
    v_base := v_xid * 1048576;
    SELECT max(id) INTO v_last FROM events WHERE id >= v_base AND id < v_base + 1048576;
    NEW.id := coalesce(v_last + 1, v_base);
    IF NEW.id >= v_base + 1048576 THEN
        RAISE EXCEPTION 'more than 1048576 events in one transaction'
            USING ERRCODE = 'program_limit_exceeded', HINT = 'Split the change into several transactions.';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER events_assign_id
    BEFORE INSERT ON booking.events
    FOR EACH ROW EXECUTE FUNCTION booking.booking_assign_event_id();

CREATE FUNCTION booking.booking_guard_event_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Events are facts once committed: an UPDATE is allowed only on an event of
   the current, uncommitted transaction (the appointment trigger turns its own
   appointment.cancelled into appointment.rescheduled), and never changes the
   id. Deleting is the purge's job (purge_booking_events()). */
BEGIN
    IF NEW.id <> OLD.id OR OLD.id / 1048576 <> pg_current_xact_id()::text::bigint THEN
        RAISE EXCEPTION 'event % cannot be changed', OLD.id
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'Events are append-only; purge old ones with purge_booking_events().';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER events_guard_change
    BEFORE UPDATE ON booking.events
    FOR EACH ROW EXECUTE FUNCTION booking.booking_guard_event_change();

CREATE FUNCTION booking.booking_record_slot_event() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* slot.created, slot.updated (start or end moved), slot.deleted, whoever
   wrote the row. A status flip is not a slot event: it happens only with a
   booking or a cancellation, whose appointment event names the slot. The
   trigger fires on UPDATE OF start_time, end_time only, so a booking pays
   nothing here. SECURITY DEFINER: a writer of slots needs no privilege on
   the event log. */
DECLARE
    v_row availability_slots;
    v_type text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_row := NEW; v_type := 'slot.created';
    ELSIF TG_OP = 'DELETE' THEN
        v_row := OLD; v_type := 'slot.deleted';
    ELSIF (NEW.start_time, NEW.end_time) IS DISTINCT FROM (OLD.start_time, OLD.end_time) THEN
        v_row := NEW; v_type := 'slot.updated';
    ELSE
        RETURN NULL;
    END IF;
    INSERT INTO events (type, occurred_at, practitioner_id, slot_id, payload)
    VALUES (v_type, booking_api.booking_now(), v_row.practitioner_id, v_row.id, booking_slot_json(v_row));
    RETURN NULL;
END
$$;

CREATE TRIGGER availability_slots_record_event
    AFTER INSERT OR DELETE OR UPDATE OF start_time, end_time ON booking.availability_slots
    FOR EACH ROW EXECUTE FUNCTION booking.booking_record_slot_event();

CREATE FUNCTION booking.booking_record_appointment_event() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* The appointment's event, derived from the row change, whoever made it:
     INSERT                                   appointment.booked
     status booked -> cancelled               appointment.cancelled
     status -> completed / no_show / ...      appointment.<status>
     rescheduled_to set on a cancelled one    appointment.rescheduled: rewrites this
                                              transaction's appointment.cancelled of it
                                              (a reschedule cancels, books, then links),
                                              or appends one when the cancellation
                                              committed earlier.
   Any other update (slot_id cleared when a cancelled appointment's slot is
   deleted) is no event of its own. rescheduled_to is read through jsonb so
   the function works with and without the lifecycle columns of 0009. */
DECLARE
    v_type     text;
    v_new      jsonb;
    v_payload  jsonb;
    v_base     bigint;
    v_event_id bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_type := 'appointment.booked';
    ELSE
        v_new := to_jsonb(NEW);
    END IF;
    IF v_type IS NOT NULL THEN
        NULL;
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        v_type := CASE WHEN NEW.status = 'cancelled' AND v_new ->> 'rescheduled_to' IS NOT NULL
                       THEN 'appointment.rescheduled' ELSE 'appointment.' || NEW.status END;
    ELSIF NEW.status = 'cancelled' AND v_new ->> 'rescheduled_to' IS NOT NULL
          AND to_jsonb(OLD) ->> 'rescheduled_to' IS NULL THEN
        v_payload := booking_appointment_json(NEW);
        v_base := pg_current_xact_id()::text::bigint * 1048576;
        SELECT id INTO v_event_id FROM events
         WHERE id >= v_base AND id < v_base + 1048576
           AND appointment_id = NEW.id AND type = 'appointment.cancelled'
         ORDER BY id DESC LIMIT 1;
        IF FOUND THEN
            UPDATE events SET type = 'appointment.rescheduled', payload = v_payload WHERE id = v_event_id;
            RETURN NULL;
        END IF;
        v_type := 'appointment.rescheduled';
    ELSE
        RETURN NULL;
    END IF;
    INSERT INTO events (type, occurred_at, practitioner_id, patient_id, slot_id, appointment_id, payload)
    VALUES (v_type, booking_api.booking_now(), NEW.practitioner_id, NEW.patient_id, NEW.slot_id, NEW.id,
            coalesce(v_payload, booking_appointment_json(NEW)));
    RETURN NULL;
END
$$;

CREATE TRIGGER appointments_record_event
    AFTER INSERT OR UPDATE ON booking.appointments
    FOR EACH ROW EXECUTE FUNCTION booking.booking_record_appointment_event();

CREATE FUNCTION booking.booking_record_time_off_event() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* time_off.created, time_off.updated, time_off.deleted, whoever wrote the row.
   The free slots a new time off removes are deleted by its function and
   each has its own slot.deleted. */
DECLARE
    v_row  time_off_periods;
    v_type text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_row := NEW; v_type := 'time_off.created';
    ELSIF TG_OP = 'DELETE' THEN
        v_row := OLD; v_type := 'time_off.deleted';
    ELSE
        v_row := NEW; v_type := 'time_off.updated';
    END IF;
    INSERT INTO events (type, occurred_at, practitioner_id, payload)
    VALUES (v_type, booking_api.booking_now(), v_row.practitioner_id, booking_time_off_json(v_row));
    RETURN NULL;
END
$$;

CREATE TRIGGER time_off_periods_record_event
    AFTER INSERT OR UPDATE OR DELETE ON booking.time_off_periods
    FOR EACH ROW EXECUTE FUNCTION booking.booking_record_time_off_event();

CREATE FUNCTION booking.booking_record_schedule_event() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* schedule.updated, once per transaction and practitioner: set_schedule()
   replaces the rules (a DELETE, then an INSERT of each rule), so the first
   rule change of a transaction appends the event and each later one
   refreshes that same event's payload to the whole schedule as it is now
   (an event may be changed by its own uncommitted transaction only;
   events_guard_change). */
DECLARE
    v_practitioner_id bigint;
    v_base            bigint := pg_current_xact_id()::text::bigint * 1048576;
    v_event_id        bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        v_practitioner_id := OLD.practitioner_id;
    ELSE
        v_practitioner_id := NEW.practitioner_id;
    END IF;
    SELECT id INTO v_event_id FROM events
     WHERE id >= v_base AND id < v_base + 1048576
       AND type = 'schedule.updated' AND practitioner_id = v_practitioner_id
     ORDER BY id DESC LIMIT 1;
    IF FOUND THEN
        UPDATE events SET payload = booking_schedule_json(v_practitioner_id) WHERE id = v_event_id;
    ELSE
        INSERT INTO events (type, occurred_at, practitioner_id, payload)
        VALUES ('schedule.updated', booking_api.booking_now(), v_practitioner_id,
                booking_schedule_json(v_practitioner_id));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER schedule_rules_record_event
    AFTER INSERT OR UPDATE OR DELETE ON booking.schedule_rules
    FOR EACH ROW EXECUTE FUNCTION booking.booking_record_schedule_event();

REVOKE ALL ON booking.event_types, booking.events, booking.webhook_subscriptions, booking.webhook_deliveries,
    booking.webhook_attempts, booking.webhook_dispatch, booking.calendar_tokens FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION booking.booking_assign_event_id(), booking.booking_guard_event_change(),
    booking.booking_record_slot_event(), booking.booking_record_appointment_event(),
    booking.booking_record_time_off_event(), booking.booking_record_schedule_event() FROM PUBLIC;

RESET ROLE;

-- Event readers and the delivery worker call functions of booking_api only.
GRANT USAGE ON SCHEMA booking_api TO medbook_events, medbook_webhooks;
