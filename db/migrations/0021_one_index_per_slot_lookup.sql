-- appointments had three indexes led by slot_id, and every booking and every
-- cancellation wrote an entry into each (a status change is never a HOT
-- update: holds_slot, part of one of them, changes with it):
--   appointments_by_slot (slot_id)                        since 0003
--   appointments_one_holder_per_slot (slot_id)
--       WHERE status <> 'cancelled', UNIQUE               since 0009
--   appointments_slot_holder_key (slot_id, holds_slot), UNIQUE  since 0020
-- The third answers every question the other two did: its leading column
-- finds a slot's appointments (the ON DELETE SET NULL of a deleted slot, the
-- invariant checks), and since holds_slot is true exactly while the
-- appointment is not cancelled (NULL otherwise, and NULLs never collide),
-- "at most one holder per slot" is its uniqueness too. The two older ones
-- are dropped; a double booking by any writer is now refused as
-- unique_violation (23505) naming appointments_slot_holder_key.
-- docs/PERFORMANCE.md gives the effect.
--
-- Dropping takes an ACCESS EXCLUSIVE lock on appointments for an instant;
-- lock_timeout bounds the wait for it. A DBA may drop them first without
-- that lock (DROP INDEX CONCURRENTLY, docs/OPERATIONS.md); IF EXISTS then
-- skips them.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

SET LOCAL ROLE medbook_owner;

-- squawk-ignore require-concurrent-index-deletion
DROP INDEX IF EXISTS booking.appointments_one_holder_per_slot;
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX IF EXISTS booking.appointments_by_slot;
