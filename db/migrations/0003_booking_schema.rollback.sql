DROP TABLE IF EXISTS booking_clock, appointment_history, appointments, availability_slots,
    practitioner_booking_settings, patients, time_zones CASCADE;
DROP FUNCTION IF EXISTS booking_assert_slot_consistent(), booking_guard_appointment_change(),
    booking_record_history(), booking_refuse_change();
