-- Removes the event log, webhooks and calendar tokens (everything 0011 made).
-- The roles medbook_events and medbook_webhooks are cluster-wide and may serve
-- other databases of the cluster: they stay, without their USAGE here. The
-- functions of db/functions/090-1xx go with the next `medbook migrate` of the
-- previous release (it drops every booking function before re-creating its own).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

REVOKE USAGE ON SCHEMA booking_api FROM medbook_events, medbook_webhooks;

SET LOCAL ROLE medbook_owner;

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
