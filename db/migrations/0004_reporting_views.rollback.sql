SET LOCAL ROLE medbook_owner;
DROP VIEW IF EXISTS reporting_appointment_counts;
DROP VIEW IF EXISTS reporting_slot_utilisation;
RESET ROLE;
