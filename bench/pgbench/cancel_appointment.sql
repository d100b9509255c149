-- One cancellation per transaction, every one of a distinct booked appointment,
-- by its own patient. The bench pre-books appointment a for patient 1 + a % patients.
\set n :n + 1
\set appointment :offset + (:n - 1) * :clients + :client_id + 1
\set patient_user :patient_user_base + 1 + (:appointment % :patients)
SELECT * FROM booking_api.cancel_appointment(:patient_user, :appointment, 'bench');
