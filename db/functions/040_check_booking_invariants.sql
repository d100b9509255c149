/* Why: the constraints should make these impossible; this lets a DBA (or a
   test after a fault) prove it. One row per violation; no rows when healthy.
   An appointment "holds" its slot while booked, and after the visit too
   (completed or no_show keep the slot booked); only a cancelled one lets go. */
CREATE OR REPLACE FUNCTION booking_api.check_booking_invariants()
RETURNS TABLE (invariant text, slot_id bigint, appointment_id bigint, detail text)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
    SELECT 'booked_slot_without_booked_appointment', s.id, NULL::bigint, 'status booked, no holding appointment'
      FROM availability_slots s
     WHERE s.status = 'booked'
       AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.slot_id = s.id AND a.status <> 'cancelled')
    UNION ALL
    SELECT 'booked_appointment_on_available_slot', a.slot_id, a.id,
           'appointment ' || a.status || ', ' || coalesce('slot status ' || s.status, 'slot missing')
      FROM appointments a
      LEFT JOIN availability_slots s ON s.id = a.slot_id
     WHERE a.status <> 'cancelled' AND s.status IS DISTINCT FROM 'booked'
    UNION ALL
    SELECT 'several_booked_appointments_per_slot', a.slot_id, NULL::bigint, count(*) || ' holding appointments'
      FROM appointments a
     WHERE a.status <> 'cancelled'
     GROUP BY a.slot_id
    HAVING count(*) > 1
    UNION ALL
    SELECT 'overlapping_slots', s1.id, NULL::bigint, 'overlaps slot ' || s2.id
      FROM availability_slots s1
      JOIN availability_slots s2
        ON s2.practitioner_id = s1.practitioner_id AND s2.id > s1.id
       AND tstzrange(s1.start_time, s1.end_time) && tstzrange(s2.start_time, s2.end_time)
    UNION ALL
    SELECT 'booked_appointment_time_differs_from_slot', a.slot_id, a.id, 'appointment and slot times differ'
      FROM appointments a
      JOIN availability_slots s ON s.id = a.slot_id
     WHERE a.status <> 'cancelled' AND (a.start_time, a.end_time) IS DISTINCT FROM (s.start_time, s.end_time)
    UNION ALL
    SELECT 'history_disagrees_with_status', a.slot_id, a.id,
           'status ' || a.status || ', last history ' || coalesce(h.to_status, 'missing')
      FROM appointments a
      LEFT JOIN LATERAL (
            SELECT to_status FROM appointment_history h
             WHERE h.appointment_id = a.id ORDER BY h.id DESC LIMIT 1) h ON true
     WHERE h.to_status IS DISTINCT FROM a.status
    UNION ALL
    SELECT 'reschedule_link_broken', a.slot_id, a.id,
           CASE WHEN a.rescheduled_to IS NOT NULL THEN 'rescheduled_to ' || a.rescheduled_to
                ELSE 'rescheduled_from ' || a.rescheduled_from END || ' does not point back'
      FROM appointments a
     WHERE (a.rescheduled_to IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM appointments n
                 WHERE n.id = a.rescheduled_to AND n.rescheduled_from = a.id
                   AND n.patient_id = a.patient_id AND n.practitioner_id = a.practitioner_id))
        OR (a.rescheduled_from IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM appointments o
                 WHERE o.id = a.rescheduled_from AND o.rescheduled_to = a.id
                   AND o.patient_id = a.patient_id AND o.practitioner_id = a.practitioner_id));
$$;

COMMENT ON FUNCTION booking_api.check_booking_invariants() IS
    'Lists violations of the booking invariants (one row each); no rows means healthy. For DBAs and tests.';
REVOKE ALL ON FUNCTION booking_api.check_booking_invariants() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.check_booking_invariants() TO medbook_reporting;
