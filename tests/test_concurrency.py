"""Simultaneous bookings of one slot: exactly one winner, everyone else slot_unavailable.

Each thread has its own connection (as medbook_api); a barrier releases them
together so the UPDATEs really race for the slot's row lock.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
from conftest import NOW, add_patient, api_connect, invariant_violations, make_slot

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
