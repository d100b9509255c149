-- The on-commit NOTIFY of 0011a, coalesced: a transaction notifies only when
-- no other notifying transaction is in flight. Every notifying commit holds
-- PostgreSQL's one notify lock through its WAL flush, so one NOTIFY per
-- booking made concurrent bookings commit one at a time; now at most one
-- transaction at a time pays that, and the others commit together. Listeners
-- still wake on commit: by the notifier's commit, the next notifier's, or, for
-- the last transactions of a burst, the webhook workers' relay.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

SET LOCAL ROLE medbook_owner;

CREATE OR REPLACE FUNCTION booking.booking_assign_event_id() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, booking, pg_temp
AS $$
/* Gives every event its id: the inserting transaction's xid8 * 2^20 + the
   number of events the transaction wrote before it. A reader that only
   returns ids below (oldest running xid) * 2^20 therefore never returns an
   id above one that can still commit (DESIGN.md section 4). Checks the type
   against event_types (a lookup, not a foreign key: a key-share lock on one
   hot event_types row per booking would be contention for nothing). The
   first event of a transaction also queues NOTIFY booking_events with that
   event's id as payload, unless event_log_settings.notify_on_commit is off:
   PostgreSQL sends it when the transaction commits and drops it on rollback,
   so listeners wake on commit. Coalesced: only while no other notifying
   transaction is in flight (a try-lock, held to the end of the transaction,
   that never waits). A notifying transaction holds PostgreSQL's one notify
   lock from pre-commit until its commit is durable, so notifying from every
   transaction would commit them one at a time; with one notifier in flight
   the others commit together, and the notifier's commit wakes listeners for
   them too, or the next notifier's, or the relay's (notify_booking_events())
   for the last ones of a burst (DESIGN.md section 4). */
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
    IF NEW.id = v_base AND (SELECT s.notify_on_commit FROM event_log_settings s)
            AND pg_try_advisory_xact_lock(1296188758, 0) THEN  -- 'MBEV': the event log's notifier
        PERFORM pg_notify('booking_events', NEW.id::text);
    END IF;
    RETURN NEW;
END
$$;
