-- Weekly schedules, time off and signed list cursors (issue 9).
--
--   * schedule_rules: a practitioner's weekly rules (local wall-clock times in
--     their booking time zone). Two rules of one weekday never overlap in time
--     and validity (EXCLUDE), so publishing never has to choose between them.
--   * time_off_periods: instants a practitioner is away. Publishing skips them;
--     creating one removes the available slots it covers.
--   * availability_slots_available_by_time: available slots in start order, for
--     the practitioner directory.
--   * cursor_key: the secret that signs list cursors, so a client can resume a
--     listing but cannot forge a position in it.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';
SET LOCAL ROLE medbook_owner;

CREATE TABLE booking.schedule_rules (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    practitioner_id bigint NOT NULL REFERENCES public.practitioners (id) ON DELETE RESTRICT,
    weekday         bigint NOT NULL,
    local_start     time NOT NULL,
    local_end       time NOT NULL,
    slot_minutes    bigint NOT NULL,
    valid_from      date,
    valid_until     date,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedule_rules_weekday_range CHECK (weekday BETWEEN 1 AND 7),
    CONSTRAINT schedule_rules_whole_minutes CHECK (
        extract(second FROM local_start) = 0 AND extract(second FROM local_end) = 0),
    CONSTRAINT schedule_rules_valid_range CHECK (local_end > local_start AND local_end < '24:00'),
    CONSTRAINT schedule_rules_slot_minutes_range CHECK (slot_minutes BETWEEN 5 AND 480),
    CONSTRAINT schedule_rules_holds_a_slot CHECK (local_end - local_start >= slot_minutes * interval '1 minute'),
    CONSTRAINT schedule_rules_validity_range CHECK (valid_until >= valid_from),
    CONSTRAINT schedule_rules_no_overlap EXCLUDE USING gist (
        practitioner_id WITH =,
        weekday WITH =,
        tsrange('2000-01-01'::date + local_start, '2000-01-01'::date + local_end) WITH &&,
        daterange(valid_from, valid_until, '[]') WITH &&)
);
COMMENT ON TABLE booking.schedule_rules IS
    'A practitioner''s weekly schedule: on weekday, slots of slot_minutes from local_start while they end by '
    'local_end, in the practitioner''s booking time zone. publish_schedule() turns rules into slots.';
COMMENT ON COLUMN booking.schedule_rules.weekday IS 'ISO weekday: 1 = Monday ... 7 = Sunday.';
COMMENT ON COLUMN booking.schedule_rules.local_start IS
    'Wall-clock time of the first slot''s start, in the practitioner''s time zone.';
COMMENT ON COLUMN booking.schedule_rules.local_end IS
    'Wall-clock time by which the last slot ends (a remainder shorter than slot_minutes stays empty).';
COMMENT ON COLUMN booking.schedule_rules.valid_from IS 'First local date the rule applies to (NULL: always).';
COMMENT ON COLUMN booking.schedule_rules.valid_until IS 'Last local date the rule applies to, inclusive (NULL: always).';

CREATE TABLE booking.time_off_periods (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    practitioner_id bigint NOT NULL REFERENCES public.practitioners (id) ON DELETE RESTRICT,
    start_time      timestamptz NOT NULL,
    end_time        timestamptz NOT NULL,
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT time_off_periods_valid_range CHECK (end_time > start_time),
    CONSTRAINT time_off_periods_reason_length CHECK (char_length(reason) <= 1000)
);
COMMENT ON TABLE booking.time_off_periods IS
    'Time a practitioner is away. Publishing skips it; creating it deletes the available slots it overlaps.';
COMMENT ON COLUMN booking.time_off_periods.reason IS
    'Free text for the practitioner (at most 1000 characters); shown to nobody else.';

-- Serves "time off of one practitioner that overlaps a range" (publishing, listing).
CREATE INDEX time_off_periods_by_range
    ON booking.time_off_periods USING gist (practitioner_id, tstzrange(start_time, end_time));

CREATE TABLE booking.cursor_key (
    id         boolean PRIMARY KEY DEFAULT true,
    secret     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cursor_key_single_row CHECK (id),
    CONSTRAINT cursor_key_secret_length CHECK (octet_length(secret) >= 32)
);
COMMENT ON TABLE booking.cursor_key IS
    'The HMAC-SHA-256 secret that signs list cursors. Replacing it invalidates every cursor handed out.';
-- 32 bytes from two random UUIDs (gen_random_uuid() draws from the server's strong random source).
INSERT INTO booking.cursor_key (secret)
VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

-- Serves the practitioner directory, which walks available slots in start order
-- (db/functions/059_list_practitioners.sql), and nothing else. Its predicate has a
-- clause only the walk states (end_time > start_time, always true by
-- availability_slots_valid_range): a planner may use a partial index only for a
-- query whose WHERE implies the predicate, so no per-practitioner query ("this
-- practitioner's slots between two instants") can pick it over
-- availability_slots_available_by_start and scan every practitioner's slots in
-- that interval instead.
--
-- Built in this transaction, so slot writes wait while it builds: 3.7 s for 10
-- million slots on the reference machine (docs/PERFORMANCE.md); statement_timeout
-- caps it at a minute. On a table too big for that, a DBA builds it first without
-- blocking writes, under this name, and IF NOT EXISTS then skips it
-- (docs/OPERATIONS.md):
--   CREATE INDEX CONCURRENTLY availability_slots_available_by_time
--       ON booking.availability_slots (start_time, practitioner_id)
--       WHERE status = 'available' AND end_time > start_time;
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS availability_slots_available_by_time
    ON booking.availability_slots (start_time, practitioner_id)
    WHERE status = 'available' AND end_time > start_time;

REVOKE ALL ON booking.schedule_rules, booking.time_off_periods, booking.cursor_key FROM PUBLIC;

RESET ROLE;
