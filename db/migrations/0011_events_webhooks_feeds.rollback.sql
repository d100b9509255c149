-- Removes the event log, webhooks and calendar tokens (everything 0011 made).
-- The roles medbook_events and medbook_webhooks are cluster-wide and may serve
-- other databases of the cluster: they stay, without their USAGE here.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

REVOKE USAGE ON SCHEMA booking_api FROM medbook_events, medbook_webhooks;

SET LOCAL ROLE medbook_owner;

-- The functions of db/functions/090-110 go too. Three take a row of a table that an
-- older migration created (availability_slots, appointments, time_off_periods): left
-- behind, they would stop the rollback of that migration.
DROP FUNCTION IF EXISTS booking.booking_slot_json(booking.availability_slots),
    booking.booking_appointment_json(booking.appointments),
    booking.booking_time_off_json(booking.time_off_periods),
    booking.booking_schedule_json(bigint), booking.booking_json_time(timestamptz),
    booking.booking_events_horizon(), booking.booking_constant_time_equal(bytea, bytea),
    booking_api.read_booking_events(bigint, integer), booking_api.booking_events_start(),
    booking_api.purge_booking_events(interval, integer),
    booking_api.add_webhook_subscription(text, text[], text), booking_api.list_webhook_subscriptions(),
    booking_api.set_webhook_subscription_enabled(bigint, boolean), booking_api.remove_webhook_subscription(bigint),
    booking_api.fan_out_webhook_events(integer), booking_api.claim_webhook_deliveries(integer, integer, interval),
    booking_api.record_webhook_attempt(bigint, uuid, text, timestamptz, integer, integer, text, interval, interval,
                                       interval),
    booking_api.release_webhook_deliveries(uuid), booking_api.notify_booking_events(bigint),
    booking_api.issue_calendar_token(bigint), booking_api.calendar_feed(text, text, bigint);
DROP TYPE IF EXISTS booking_api.booking_event;

DROP TRIGGER schedule_rules_record_event ON booking.schedule_rules;
DROP TRIGGER time_off_periods_record_event ON booking.time_off_periods;
DROP TRIGGER appointments_record_event ON booking.appointments;
DROP TRIGGER availability_slots_record_event ON booking.availability_slots;
-- Dropping them is what rolling back the migration that created them is for.
-- squawk-ignore ban-drop-table
DROP TABLE booking.calendar_tokens, booking.webhook_dispatch, booking.webhook_attempts,
    booking.webhook_deliveries, booking.webhook_subscriptions, booking.events, booking.event_types;
DROP FUNCTION booking.booking_record_schedule_event(), booking.booking_record_time_off_event(),
    booking.booking_record_appointment_event(), booking.booking_record_slot_event(),
    booking.booking_guard_event_change(), booking.booking_assign_event_id();

RESET ROLE;
