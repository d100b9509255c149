-- The available slots of one random practitioner on one random local date
-- (the practitioner's own zone), as GET /v1/practitioners/{id}/slots?date= asks;
-- first_day counts days since 2000-01-01.
\set practitioner random(1, :practitioners)
\set day random(0, :days - 1)
\set user :patient_user_base + random(1, :patients)
SELECT * FROM booking_api.list_available_slots(:user, :practitioner, DATE '2000-01-01' + (:first_day::integer + :day::integer), NULL, 100);
