-- Back to 0018: availability_slots_available_by_start without the included columns.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

SET LOCAL ROLE medbook_owner;

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX availability_slots_available_by_start_narrow
    ON booking.availability_slots (practitioner_id, start_time)
    WHERE status = 'available';
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX booking.availability_slots_available_by_start;
ALTER INDEX booking.availability_slots_available_by_start_narrow
    RENAME TO availability_slots_available_by_start;
