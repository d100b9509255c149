"""Simultaneous bookings of one slot: exactly one winner, everyone else slot_unavailable.

Each thread has its own connection (as medbook_api); a barrier releases them
together so the UPDATEs really race for the slot's row lock.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
from conftest import NOW, add_patient, api_connect, invariant_violations, make_slot
from psycopg.types.json import Jsonb

THREADS = 24
SLOTS = 25


def test_one_winner_per_slot_under_contention(db, admin, world):
    patients = [add_patient(admin)[0] for _ in range(THREADS)]
    slots = [make_slot(admin, world, NOW + timedelta(days=1, hours=i))["id"] for i in range(SLOTS)]
    connections = [api_connect(db) for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    outcomes: dict[int, list[tuple[int, str]]] = {slot: [] for slot in slots}
    lock = threading.Lock()

    def contend(index: int) -> None:
        conn, patient = connections[index], patients[index]
        for slot in slots:
            barrier.wait(timeout=30)
            try:
                conn.execute("SELECT * FROM book_slot(%s, %s)", (patient, slot)).fetchone()
                outcome = "booked"
            except psycopg.Error as exc:
                outcome = exc.sqlstate or repr(exc)
            with lock:
                outcomes[slot].append((patient, outcome))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(THREADS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)
    finally:
        for conn in connections:
            conn.close()

    for slot, results in outcomes.items():
        assert len(results) == THREADS
        winners = [patient for patient, outcome in results if outcome == "booked"]
        losers = [outcome for _, outcome in results if outcome != "booked"]
        assert len(winners) == 1, (slot, results)
        assert set(losers) == {"MBS01"}, (slot, results)
        booked = admin.execute(
            "SELECT a.patient_id, p.user_id, s.status FROM appointments a "
            "JOIN patients p ON p.id = a.patient_id JOIN availability_slots s ON s.id = a.slot_id "
            "WHERE a.slot_id = %s AND a.status = 'booked'", (slot,)).fetchall()
        assert len(booked) == 1
        assert booked[0]["user_id"] == winners[0]
        assert booked[0]["status"] == "booked"
    assert admin.execute("SELECT count(*) AS n FROM appointments").fetchone()["n"] == SLOTS
    assert invariant_violations(admin) == []


def test_cancel_and_rebook_race(db, admin, world):
    """A cancellation racing bookings by others: the slot ends with at most one booking, consistent."""
    patients = [add_patient(admin)[0] for _ in range(THREADS)]
    rounds = 10
    for round_no in range(rounds):
        slot = make_slot(admin, world, NOW + timedelta(days=2, hours=round_no))["id"]
        first = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot)).fetchone()
        connections = [api_connect(db) for _ in range(THREADS + 1)]
        barrier = threading.Barrier(THREADS + 1)
        results: list[str] = []
        lock = threading.Lock()

        def run(index: int, slot=slot, first=first, connections=connections, barrier=barrier,
                results=results, lock=lock) -> None:
            conn = connections[index]
            barrier.wait(timeout=30)
            try:
                if index == THREADS:
                    conn.execute("SELECT cancel_appointment(%s, %s)", (world.patient_user, first["id"]))
                    outcome = "cancelled"
                else:
                    conn.execute("SELECT book_slot(%s, %s)", (patients[index], slot))
                    outcome = "booked"
            except psycopg.Error as exc:
                outcome = exc.sqlstate or repr(exc)
            with lock:
                results.append(outcome)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS + 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        for conn in connections:
            conn.close()

        assert results.count("cancelled") == 1
        assert results.count("booked") <= 1
        assert set(results) <= {"cancelled", "booked", "MBS01"}, results
        status = admin.execute("SELECT status FROM availability_slots WHERE id = %s", (slot,)).fetchone()["status"]
        assert status == ("booked" if "booked" in results else "available")
    assert invariant_violations(admin) == []


# Availability changes racing bookings ---------------------------------------------------

def race(db: str, jobs: list) -> list:
    """Runs each job(conn) in its own thread and connection (as medbook_api), released together.

    Returns each job's result, or the SQLSTATE of its error."""
    connections = [api_connect(db) for _ in jobs]
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def run(index: int) -> None:
        barrier.wait(timeout=30)
        try:
            results[index] = jobs[index](connections[index])
        except psycopg.Error as exc:
            results[index] = exc.sqlstate or repr(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)
    finally:
        for conn in connections:
            conn.close()
    return results


def test_time_off_racing_bookings_leaves_no_free_slot_inside_it(db, admin, world):
    """Patients book a day's slots while the practitioner takes that day off: every slot ends
    either booked (and, if booked first, reported to the practitioner) or gone."""
    patients = [add_patient(admin)[0] for _ in range(THREADS)]
    day = NOW + timedelta(days=5)
    for rounds in range(5):
        start = day + timedelta(days=rounds)
        slots = [make_slot(admin, world, start + timedelta(minutes=30 * i))["id"] for i in range(THREADS)]

        def booking(slot, patient):
            return lambda conn: conn.execute("SELECT id FROM book_slot(%s, %s)", (patient, slot)).fetchone()["id"]

        def time_off(conn, start=start):
            return conn.execute("SELECT * FROM create_time_off(%s, %s, %s, %s)",
                                (world.practitioner_user, world.practitioner, start,
                                 start + timedelta(hours=24))).fetchone()

        results = race(db, [*(booking(s, p) for s, p in zip(slots, patients, strict=True)), time_off])
        away, bookings = results[-1], results[:-1]
        assert isinstance(away, dict), away
        assert set(r for r in bookings if isinstance(r, str)) <= {"MB404"}, bookings
        left = admin.execute("SELECT id, status FROM availability_slots WHERE id = ANY(%s)", (slots,)).fetchall()
        assert {r["status"] for r in left} <= {"booked"}, "no available slot inside the time off"
        booked = {r["id"] for r in left}
        assert len(booked) == sum(isinstance(r, int) for r in bookings)
        assert set(away["booked_slot_ids"]) == booked  # booked before it: reported; after it: impossible
        assert away["removed_slots"] == THREADS - len(booked)
    assert invariant_violations(admin) == []


def test_publish_racing_bookings_and_itself(db, admin, world):
    """Two publishes of the same days, bookings of the slots as they appear, and time off:
    every slot is created once, nothing overlaps, the books balance."""
    patients = [add_patient(admin)[0] for _ in range(8)]
    admin.execute("SELECT * FROM set_schedule(%s, %s, %s)", (world.practitioner_user, world.practitioner, Jsonb(
        [{"weekday": d, "start": "08:00", "end": "18:00", "slot_minutes": 20} for d in range(1, 8)])))
    through = (NOW + timedelta(days=6)).date()

    def publish(conn):
        return conn.execute("SELECT * FROM publish_schedule(%s, %s, %s)",
                            (world.practitioner_user, world.practitioner, through)).fetchone()

    def keep_booking(patient):
        def run(conn):
            booked, deadline = 0, time.monotonic() + 10
            while booked < 5 and time.monotonic() < deadline:
                free = conn.execute("SELECT id FROM list_slots(%s, %s, NULL, NULL, NULL, NULL, 'available', 5)",
                                    (patient, world.practitioner)).fetchall()
                if not free:
                    time.sleep(0.005)  # not published yet
                for row in free:
                    try:
                        conn.execute("SELECT * FROM book_slot(%s, %s)", (patient, row["id"]))
                        booked += 1
                        break
                    except psycopg.Error as exc:
                        assert exc.sqlstate in {"MBS01", "MB404"}, exc
            return booked
        return run

    def time_off(conn):
        return conn.execute("SELECT * FROM create_time_off(%s, %s, %s, %s)",
                            (world.practitioner_user, world.practitioner, NOW + timedelta(days=3),
                             NOW + timedelta(days=4))).fetchone()

    results = race(db, [publish, publish, time_off, *(keep_booking(p) for p in patients)])
    first, second, away = results[0], results[1], results[2]
    assert all(isinstance(r, dict) for r in (first, second, away)), results[:3]
    described = first["created"] + first["skipped"]
    assert second["created"] + second["skipped"] == described
    slots = admin.execute("SELECT count(*) AS n FROM availability_slots").fetchone()["n"]
    assert slots == first["created"] + second["created"] - away["removed_slots"]
    booked = admin.execute("SELECT count(*) AS n FROM appointments WHERE status = 'booked'").fetchone()["n"]
    assert booked == sum(results[3:]) > 0
    inside = admin.execute("SELECT count(*) AS n FROM availability_slots s JOIN time_off_periods t "
                           "ON tstzrange(s.start_time, s.end_time) && tstzrange(t.start_time, t.end_time) "
                           "WHERE s.status = 'available'").fetchone()["n"]
    assert inside == 0, "publishing never recreates what time off removed"
    assert invariant_violations(admin) == []


def test_bulk_creates_of_the_same_slots_are_all_or_nothing(db, admin, world):
    """Many practitioners' tabs send overlapping bulk creates at once: exactly one list is created whole."""
    day = NOW + timedelta(days=2)
    for rounds in range(10):
        base = day + timedelta(days=rounds)

        def bulk(offset, base=base):
            starts = [base + timedelta(minutes=offset + 30 * i) for i in range(10)]
            return lambda conn: len(conn.execute("SELECT * FROM create_slots(%s, %s, %s, %s)",
                                                 (world.practitioner_user, world.practitioner, starts,
                                                  [s + timedelta(minutes=30) for s in starts])).fetchall())

        results = race(db, [bulk(offset) for offset in (0, 10, 20, 0, 10, 20, 0, 10)])
        assert results.count(10) == 1, results
        assert set(results) == {10, "MBS02"}, results
        made = admin.execute("SELECT count(*) AS n FROM availability_slots WHERE start_time >= %s "
                             "AND start_time < %s", (base, base + timedelta(days=1))).fetchone()["n"]
        assert made == 10
    assert invariant_violations(admin) == []


def test_range_delete_racing_bookings(db, admin, world):
    """Bookings and a range delete of the same day: each slot is booked, or deleted, never both."""
    patients = [add_patient(admin)[0] for _ in range(THREADS)]
    for rounds in range(5):
        start = NOW + timedelta(days=10 + rounds)
        slots = [make_slot(admin, world, start + timedelta(minutes=30 * i))["id"] for i in range(THREADS)]

        def booking(slot, patient):
            return lambda conn: conn.execute("SELECT id FROM book_slot(%s, %s)", (patient, slot)).fetchone()["id"]

        day = start.date()

        def wipe(conn, day=day):
            return conn.execute("SELECT * FROM delete_slots(%s, %s, %s, %s)",
                                (world.practitioner_user, world.practitioner, day, day)).fetchone()

        results = race(db, [*(booking(s, p) for s, p in zip(slots, patients, strict=True)), wipe])
        wiped, bookings = results[-1], results[:-1]
        booked = {r["id"] for r in admin.execute(
            "SELECT id FROM availability_slots WHERE id = ANY(%s)", (slots,)).fetchall()}
        assert wiped["deleted"] == THREADS - len(booked)
        assert set(wiped["booked_slot_ids"]) == booked
        assert len(booked) == sum(isinstance(r, int) for r in bookings)
        assert set(r for r in bookings if isinstance(r, str)) <= {"MB404"}
    assert invariant_violations(admin) == []
