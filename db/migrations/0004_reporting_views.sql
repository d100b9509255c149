-- Reporting views for analysts, read through medbook_reporting.
--
-- Aggregates only: no emails, names, patient ids or cancellation reasons ever
-- leave through these views. They are owned by medbook_owner and run with its
-- rights (ordinary views, not security_invoker), so medbook_reporting needs
-- SELECT on the views and nothing on the tables beneath them. Days are local
-- dates in the practitioner's booking time zone (UTC when unset).

SET LOCAL ROLE medbook_owner;

CREATE VIEW reporting_slot_utilisation AS
SELECT s.practitioner_id,
       (s.start_time AT TIME ZONE coalesce(b.time_zone, 'UTC'))::date AS day,
       count(*) AS slots,
       count(*) FILTER (WHERE s.status = 'booked') AS booked_slots,
       sum(extract(epoch FROM s.end_time - s.start_time) / 60)::bigint AS offered_minutes,
       coalesce(sum(extract(epoch FROM s.end_time - s.start_time) / 60)
                FILTER (WHERE s.status = 'booked'), 0)::bigint AS booked_minutes
  FROM availability_slots s
  LEFT JOIN practitioner_booking_settings b ON b.practitioner_id = s.practitioner_id
 GROUP BY 1, 2;
COMMENT ON VIEW reporting_slot_utilisation IS
    'Per practitioner and local day: slots offered and booked, in count and minutes. Slots that '
    'were deleted are gone; cancelled appointments leave their slot available again.';
COMMENT ON COLUMN reporting_slot_utilisation.day IS
    'Local date of the slot start in the practitioner''s booking time zone.';

CREATE VIEW reporting_appointment_counts AS
SELECT a.practitioner_id,
       (a.start_time AT TIME ZONE coalesce(b.time_zone, 'UTC'))::date AS day,
       a.status,
       count(*) AS appointments,
       count(*) FILTER (WHERE a.status = 'cancelled' AND a.cancelled_by = pr.user_id)
           AS cancelled_by_practitioner
  FROM appointments a
  JOIN practitioners pr ON pr.id = a.practitioner_id
  LEFT JOIN practitioner_booking_settings b ON b.practitioner_id = a.practitioner_id
 GROUP BY 1, 2, 3;
COMMENT ON VIEW reporting_appointment_counts IS
    'Per practitioner, local day of the appointment and status (booked | cancelled): how many '
    'appointments, and how many of the cancelled ones the practitioner cancelled.';

REVOKE ALL ON reporting_slot_utilisation, reporting_appointment_counts FROM PUBLIC;
GRANT SELECT ON reporting_slot_utilisation, reporting_appointment_counts TO medbook_reporting;

RESET ROLE;
