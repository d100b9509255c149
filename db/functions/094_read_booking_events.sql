/* Why: other services learn what happened by paging through the event log
   with a cursor: the id of the last event they processed. Sequence order is
   not commit order, so a plain "id > cursor" would let an event of a slow
   transaction appear later below a cursor that has moved on. This returns
   only ids below booking_events_horizon() (093): all of them final, and no
   id that can still appear is below them. So after a reader has seen id N,
   every event below N that will ever exist was already visible to it.
   STABLE: the horizon and the rows come from one snapshot. */
CREATE TYPE booking_api.booking_event AS (
    id              bigint,
    type            text,
    occurred_at     timestamptz,
    practitioner_id bigint,
    patient_id      bigint,
    slot_id         bigint,
    appointment_id  bigint,
    payload         jsonb
);
COMMENT ON TYPE booking_api.booking_event IS
    'One event of the log: type (appointment.booked ...), when, whom it concerns, and the resource as JSON.';

CREATE OR REPLACE FUNCTION booking_api.read_booking_events(
    p_after_id bigint,
    p_limit    integer DEFAULT 100
)
RETURNS SETOF booking_api.booking_event
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, booking, pg_temp
AS $$
BEGIN
    PERFORM booking_require_limit(p_limit);
    RETURN QUERY
        SELECT e.id, e.type, e.occurred_at, e.practitioner_id, e.patient_id, e.slot_id, e.appointment_id,
               e.payload
          FROM events e
         WHERE e.id > coalesce(p_after_id, -1)
           AND e.id < booking_events_horizon()
         ORDER BY e.id
         LIMIT p_limit;
END
$$;

COMMENT ON FUNCTION booking_api.read_booking_events(bigint, integer) IS
    'Up to p_limit (1-500) events with id > p_after_id (NULL: from the start), in id order. Pass the last id '
    'you processed as the next p_after_id: no event below it can appear later. Errors: MB400.';
REVOKE ALL ON FUNCTION booking_api.read_booking_events(bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking_api.read_booking_events(bigint, integer) TO medbook_events;
