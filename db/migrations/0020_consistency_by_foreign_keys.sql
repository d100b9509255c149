-- squawk-ignore-file constraint-missing-not-valid, adding-foreign-key-constraint, disallowed-unique-constraint, adding-field-with-default
-- The rule "a slot is 'booked' exactly when an appointment holds it" is kept
-- by two deferred composite foreign keys instead of two deferred PL/pgSQL
-- constraint triggers. PostgreSQL checks a foreign key in C with one cached
-- index probe; the triggers cost a PL/pgSQL call and a query each at every
-- commit that books, and that was the largest single piece of a booking's
-- cost left (docs/PERFORMANCE.md, "The ablation: where the floor is").
--
-- Each table gets a stored generated column that is true exactly when its
-- side of the rule says "held" and NULL otherwise (never false: a foreign key
-- with a NULL column is not checked, MATCH SIMPLE):
--   appointments.holds_slot   true while the appointment holds its slot
--                             (booked, completed, no_show);
--   availability_slots.held   true while the slot is booked.
-- Then
--   appointments (slot_id, holds_slot) -> availability_slots (id, held):
--       an appointment that holds its slot points at a booked slot;
--   availability_slots (id, held) -> appointments (slot_id, holds_slot):
--       a booked slot has an appointment that holds it.
-- Both are DEFERRABLE INITIALLY DEFERRED: a booking writes the appointment and
-- flips the slot in one transaction, and a transaction may create, book,
-- cancel and book a slot again; each is judged at commit on the rows as they
-- are then. The unique key (slot_id, holds_slot) that the second references
-- also says "at most one holder per slot", as the partial unique index
-- appointments_one_holder_per_slot does; that index stays for now (its name is
-- what book_slot and the invariant tests document as the backstop).
--
-- A writer that breaks the rule now gets foreign_key_violation (23503) naming
-- one of the two constraints, at commit, instead of check_violation (23514)
-- from availability_slots_booking_consistency.
--
-- Adding the generated columns rewrites both tables under an ACCESS EXCLUSIVE
-- lock (docs/OPERATIONS.md: 37 s for 3 million slots on the reference machine); run
-- it in a quiet window on a large database. statement_timeout caps each step.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '30min';

SET LOCAL ROLE medbook_owner;

ALTER TABLE booking.appointments
    ADD COLUMN holds_slot boolean GENERATED ALWAYS AS (CASE WHEN status <> 'cancelled' THEN true END) STORED;
COMMENT ON COLUMN booking.appointments.holds_slot IS
    'true while the appointment holds its slot (booked, completed, no_show), else NULL; '
    'the key of the slot consistency foreign keys.';
ALTER TABLE booking.availability_slots
    ADD COLUMN held boolean GENERATED ALWAYS AS (CASE WHEN status = 'booked' THEN true END) STORED;
COMMENT ON COLUMN booking.availability_slots.held IS
    'true while the slot is booked, else NULL; the key of the slot consistency foreign keys.';

ALTER TABLE booking.availability_slots
    ADD CONSTRAINT availability_slots_id_held_key UNIQUE (id, held);
ALTER TABLE booking.appointments
    ADD CONSTRAINT appointments_slot_holder_key UNIQUE (slot_id, holds_slot);

ALTER TABLE booking.appointments
    ADD CONSTRAINT appointments_holder_slot_is_booked FOREIGN KEY (slot_id, holds_slot)
        REFERENCES booking.availability_slots (id, held) DEFERRABLE INITIALLY DEFERRED;
COMMENT ON CONSTRAINT appointments_holder_slot_is_booked ON booking.appointments IS
    'An appointment that holds its slot (booked, completed, no_show) points at a booked slot; checked at commit.';
ALTER TABLE booking.availability_slots
    ADD CONSTRAINT availability_slots_booked_has_holder FOREIGN KEY (id, held)
        REFERENCES booking.appointments (slot_id, holds_slot) DEFERRABLE INITIALLY DEFERRED;
COMMENT ON CONSTRAINT availability_slots_booked_has_holder ON booking.availability_slots IS
    'A booked slot has an appointment that holds it; checked at commit.';

DROP TRIGGER availability_slots_booking_consistency ON booking.availability_slots;
DROP TRIGGER appointments_booking_consistency ON booking.appointments;
DROP FUNCTION booking.booking_assert_slot_status_consistent();
DROP FUNCTION booking.booking_assert_appointment_slots_consistent();

RESET ROLE;
