-- availability_slots_available_by_start also carries id, end_time and version,
-- so list_available_slots (db/functions/014, which names those columns) answers
-- from the index alone: an index-only scan reads a practitioner's day from one
-- or two leaf pages instead of up to one heap page per slot (slots published
-- in bulk for a whole practice interleave practitioners on the heap). Pages
-- the visibility map does not mark all-visible (written since the last
-- vacuum) are still read from the heap. Same key, same predicate, so every
-- query that used the index uses this one. Only available slots have an
-- entry, 24 bytes wider now: a booking writes nothing more, a new slot or a
-- cancellation a wider entry. docs/PERFORMANCE.md gives the effect.
--
-- Built in this transaction, so slot writes wait while it builds (seconds for
-- 10 million slots on the reference machine); statement_timeout caps it. On a
-- table too big for that, a DBA builds it first without blocking writes, under
-- this name, and IF NOT EXISTS then skips it (docs/OPERATIONS.md):
--   CREATE INDEX CONCURRENTLY availability_slots_available_by_start_covering
--       ON booking.availability_slots (practitioner_id, start_time) INCLUDE (id, end_time, version)
--       WHERE status = 'available';

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

SET LOCAL ROLE medbook_owner;

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS availability_slots_available_by_start_covering
    ON booking.availability_slots (practitioner_id, start_time) INCLUDE (id, end_time, version)
    WHERE status = 'available';
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX booking.availability_slots_available_by_start;
ALTER INDEX booking.availability_slots_available_by_start_covering
    RENAME TO availability_slots_available_by_start;
