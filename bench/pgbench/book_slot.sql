-- One booking per transaction, every one of a distinct slot.
-- Client k books slot offset + k + 1, then offset + clients + k + 1, ...: the
-- per-client counter n (pgbench -D n=0) lives across transactions, so no two
-- transactions of the run ever name the same slot.
\set n :n + 1
\set slot :offset + (:n - 1) * :clients + :client_id + 1
\set patient_user :patient_user_base + 1 + (:client_id % :patients)
SELECT * FROM booking_api.book_slot(:patient_user, :slot);
