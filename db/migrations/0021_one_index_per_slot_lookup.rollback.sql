-- Back to 0020: appointments_by_slot and appointments_one_holder_per_slot again.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

SET LOCAL ROLE medbook_owner;

-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX appointments_one_holder_per_slot
    ON booking.appointments (slot_id)
    WHERE status <> 'cancelled';
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX appointments_by_slot ON booking.appointments (slot_id);
