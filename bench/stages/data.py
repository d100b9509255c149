"""The bench data: practitioners, patients, slots, and pre-booked appointments."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from .common import CLOCK, FIRST_DAY, SLOTS_PER_DAY, Sizes, log


def load_data(conninfo: str, sizes: Sizes, *, days: int | None = None, parallel: int = 1) -> float:
    """Bulk-loads people and slots as the superuser, through the real constraints and triggers.

    Ids are explicit so the pgbench scripts can compute them: practitioner p is
    users.id p; patient q is users.id practitioners + q; slot ids are
    time-major (slot i of practitioner p is i * practitioners + p), so
    consecutive ids belong to different practitioners, as real bookings would.
    Slots are INSERT ... SELECT generate_series statements, one per slot of the
    day (one per slot index keeps each transaction's deferred trigger queue to
    one slot per practitioner), spread over `parallel` connections. Returns the
    seconds the slots took.
    """
    p, q = sizes.practitioners, sizes.patients
    per = (days or sizes.days) * SLOTS_PER_DAY
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SELECT booking.set_booking_clock(%s)", (CLOCK,))
        conn.execute("""
            INSERT INTO users (id, email, name, role)
            SELECT g, 'practitioner' || g || '@bench.invalid', 'Practitioner ' || g, 'practitioner'
              FROM generate_series(1, %(p)s) g
            UNION ALL
            SELECT %(p)s + g, 'patient' || g || '@bench.invalid', 'Patient ' || g, 'patient'
              FROM generate_series(1, %(q)s) g""", {"p": p, "q": q})
        conn.execute("INSERT INTO practitioners (id, user_id, specialty) "
                     "SELECT g, g, 'general practice' FROM generate_series(1, %s) g", (p,))
        conn.execute("INSERT INTO booking.patients (id, user_id) OVERRIDING SYSTEM VALUE "
                     "SELECT g, %s + g FROM generate_series(1, %s) g", (p, q))
        # Every practitioner has settings, as in production; half keep their dates in London.
        conn.execute("INSERT INTO booking.practitioner_booking_settings (practitioner_id, time_zone) "
                     "SELECT g, CASE WHEN g %% 2 = 0 THEN 'Europe/London' ELSE 'UTC' END "
                     "FROM generate_series(1, %s) g", (p,))
        for schema_name, table in (("public", "users"), ("public", "practitioners"), ("booking", "patients")):
            conn.execute(sql.SQL("SELECT setval(pg_get_serial_sequence({}, 'id'), (SELECT max(id) FROM {}))")
                         .format(sql.Literal(f"{schema_name}.{table}"), sql.Identifier(schema_name, table)))
    started = time.monotonic()
    done = [0]
    lock = threading.Lock()

    def load(indexes: range) -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")
            for i in indexes:
                day, k = divmod(i, SLOTS_PER_DAY)
                start = datetime.combine(FIRST_DAY + timedelta(days=day), datetime.min.time(), UTC) \
                    + timedelta(hours=8, minutes=30 * k)
                conn.execute("""
                    INSERT INTO booking.availability_slots (id, practitioner_id, start_time, end_time)
                    OVERRIDING SYSTEM VALUE
                    SELECT %(i)s::bigint * %(p)s + g, g, %(start)s, %(start)s + interval '30 minutes'
                      FROM generate_series(1, %(p)s) g""", {"i": i, "p": p, "start": start})
                with lock:
                    done[0] += 1
                    if done[0] % max(1, per // 6) == 0:
                        log(f"  slots: {done[0] * p:,} of {per * p:,} ({time.monotonic() - started:.0f} s)")

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(load, [range(w, per, parallel) for w in range(parallel)]))
    seconds = time.monotonic() - started
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT setval(pg_get_serial_sequence('booking.availability_slots', 'id'), %s)", (per * p,))
        log(f"loaded {p:,} practitioners, {q:,} patients, {per * p:,} slots in {seconds:.0f} s "
            f"({per * p / seconds:,.0f} slots/s, {parallel} connection(s))")
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")  # the runs start without the load's dirty pages
    return seconds


def prebook(conninfo: str, sizes: Sizes, first_slot: int, count: int) -> int:
    """Books slots first_slot+1 .. first_slot+count in bulk for the cancellation runs.

    Appointment a is for patient 1 + a % patients (what cancel_appointment.sql
    assumes); the history and consistency triggers run as for any booking.
    Returns the appointment id offset (appointments offset+1 .. offset+count).
    """
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        offset = conn.execute("SELECT coalesce(max(id), 0) FROM booking.appointments").fetchone()[0]
        step = 50_000
        for lo in range(0, count, step):
            n = min(step, count - lo)
            conn.execute("""
                WITH claimed AS (
                    UPDATE booking.availability_slots SET status = 'booked', updated_at = %(clock)s
                     WHERE id > %(first)s AND id <= %(first)s + %(n)s AND status = 'available'
                    RETURNING *)
                INSERT INTO booking.appointments (id, slot_id, patient_id, practitioner_id, status,
                                          start_time, end_time, booked_at) OVERRIDING SYSTEM VALUE
                SELECT %(shift)s + c.id, c.id, 1 + (%(shift)s + c.id) %% %(q)s, c.practitioner_id, 'booked',
                       c.start_time, c.end_time, %(clock)s
                  FROM claimed c""",
                         {"clock": CLOCK, "first": first_slot + lo, "n": n, "q": sizes.patients,
                          "shift": offset - first_slot})
        conn.execute("SELECT setval(pg_get_serial_sequence('booking.appointments', 'id'), %s)", (offset + count,))
        booked = conn.execute("SELECT count(*) FROM booking.appointments WHERE id > %s AND status = 'booked'",
                              (offset,)).fetchone()[0]
        if booked != count:
            raise SystemExit(f"bench: pre-booked {booked} appointments, expected {count}")
        conn.execute("VACUUM ANALYZE booking.availability_slots, booking.appointments, booking.appointment_history")
    return offset


def max_booked_slot(conninfo: str, below: int) -> int:
    with psycopg.connect(conninfo) as conn:
        return conn.execute("SELECT coalesce(max(slot_id), 0) FROM booking.appointments WHERE slot_id <= %s",
                            (below,)).fetchone()[0]


def count_appointments(conninfo: str, status: str) -> int:
    with psycopg.connect(conninfo) as conn:
        return conn.execute("SELECT count(*) FROM booking.appointments WHERE status = %s", (status,)).fetchone()[0]
