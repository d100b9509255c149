/* Why: callers see declared shapes, never table rows. A column added to a
   booking table reaches no SQL caller, other service or API response until
   it is added here on purpose. Each type has one function that turns its
   table's row into it, so every function returns the same shape the same
   way. migrate drops and re-creates these types with the functions
   (db/CONVENTIONS.md), so a changed shape needs no migration step.
   The converters are PL/pgSQL: a SQL function that pins search_path is never
   inlined and runs through the SQL-function executor on every call (3.6 us
   against 1.3 us per appointment, docs/PERFORMANCE.md), and every booking
   and every listed row calls one. */
CREATE TYPE booking_api.slot AS (
    id              bigint,
    practitioner_id bigint,
    start_time      timestamptz,
    end_time        timestamptz,
    status          text,
    version         bigint
);
COMMENT ON TYPE booking_api.slot IS
    'A slot as callers see it: status is available | booked; version changes with every change of the slot '
    '(its ETag; pass it as p_if_match to update_slot() and delete_slot()).';

CREATE TYPE booking_api.appointment AS (
    id                  bigint,
    slot_id             bigint,
    patient_id          bigint,
    practitioner_id     bigint,
    status              text,
    start_time          timestamptz,
    end_time            timestamptz,
    booked_at           timestamptz,
    cancelled_at        timestamptz,
    cancelled_by        bigint,
    cancellation_reason text,
    rescheduled_from    bigint,
    rescheduled_to      bigint,
    version             bigint
);
COMMENT ON TYPE booking_api.appointment IS
    'An appointment as its patient and practitioner see it: status is booked | cancelled | completed | no_show; '
    'slot_id is NULL once a cancelled appointment''s slot is deleted; rescheduled_from and rescheduled_to link '
    'an appointment and the one that replaced it; version changes with every change of the appointment (the FHIR '
    'facade''s meta.versionId and ETag; pass it as p_if_match to cancel_appointment() and replace_appointment()).';

CREATE TYPE booking_api.booking_settings AS (
    practitioner_id     bigint,
    time_zone           text,
    cancellation_notice interval,
    version             bigint
);
COMMENT ON TYPE booking_api.booking_settings IS
    'A practitioner''s booking time zone and cancellation notice; version (0 while never set) is their ETag '
    '(pass it as p_if_match to set_booking_settings()).';

CREATE OR REPLACE FUNCTION booking.slot_out(p_slot booking.availability_slots)
RETURNS booking_api.slot
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    RETURN ROW(p_slot.id, p_slot.practitioner_id, p_slot.start_time, p_slot.end_time,
               p_slot.status, p_slot.version)::booking_api.slot;
END
$$;
COMMENT ON FUNCTION booking.slot_out(booking.availability_slots) IS
    'The booking_api.slot shape of a slot row.';
REVOKE ALL ON FUNCTION booking.slot_out(booking.availability_slots) FROM PUBLIC;

CREATE OR REPLACE FUNCTION booking.appointment_out(p_appointment booking.appointments)
RETURNS booking_api.appointment
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    RETURN ROW(p_appointment.id, p_appointment.slot_id, p_appointment.patient_id,
               p_appointment.practitioner_id, p_appointment.status, p_appointment.start_time,
               p_appointment.end_time, p_appointment.booked_at, p_appointment.cancelled_at,
               p_appointment.cancelled_by, p_appointment.cancellation_reason,
               p_appointment.rescheduled_from, p_appointment.rescheduled_to,
               p_appointment.version)::booking_api.appointment;
END
$$;
COMMENT ON FUNCTION booking.appointment_out(booking.appointments) IS
    'The booking_api.appointment shape of an appointment row.';
REVOKE ALL ON FUNCTION booking.appointment_out(booking.appointments) FROM PUBLIC;
