"""REST and FHIR bookers racing for one slot: exactly one winner, every other told the slot is taken.

A FHIR booking is book_slot_expecting(), which books with book_slot() itself,
so both kinds of booker meet the same conditional UPDATE under the slot's row
lock. Proved twice: at the SQL level (threads with their own medbook_api
connections, released by a barrier, half calling book_slot() and half
book_slot_expecting()), and over HTTP (threads with their own test clients,
half POSTing /v1/appointments and half POSTing a FHIR Appointment).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
from conftest import (
    JWT_SECRET,
    NOW,
    add_patient,
    api_connect,
    bearer,
    invariant_violations,
    make_slot,
)

from api import create_app

SQL_THREADS, SQL_SLOTS = 16, 12
HTTP_THREADS, HTTP_SLOTS = 10, 6


def run_race(workers: int, slots: list[int], attempt) -> dict[int, list[tuple[int, str, str]]]:
    """Calls attempt(worker, slot) -> outcome in every worker for each slot, released together per slot."""
    barrier = threading.Barrier(workers)
    outcomes: dict[int, list[tuple[int, str, str]]] = {slot: [] for slot in slots}
    lock = threading.Lock()

    def work(index: int) -> None:
        for slot in slots:
            barrier.wait(timeout=60)
            outcome = attempt(index, slot)
            with lock:
                outcomes[slot].append((index, "fhir" if index % 2 else "rest", outcome))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def assert_one_winner(admin, outcomes, workers: int, lost: dict[str, str]) -> None:
    """Per slot: one booking, and every other worker got its kind's `lost` answer."""
    for slot, results in outcomes.items():
        assert len(results) == workers
        assert [outcome for _, _, outcome in results].count("booked") == 1, (slot, results)
        for _, kind, outcome in results:
            assert outcome in ("booked", lost[kind]), (slot, results)
        booked = admin.execute("SELECT count(*) AS n FROM appointments WHERE slot_id = %s AND status = 'booked'",
                               (slot,)).fetchone()["n"]
        assert booked == 1
    assert invariant_violations(admin) == []


def test_rest_and_fhir_bookers_in_sql(db, admin, world):
    patients = [add_patient(admin) for _ in range(SQL_THREADS)]
    slots = [make_slot(admin, world, NOW + timedelta(days=1, hours=i))["id"] for i in range(SQL_SLOTS)]
    connections = [api_connect(db) for _ in range(SQL_THREADS)]

    def attempt(index: int, slot: int) -> str:
        user, patient = patients[index]
        try:
            if index % 2:
                connections[index].execute("SELECT * FROM book_slot_expecting(%s, %s, %s, %s)",
                                           (user, slot, patient, world.practitioner))
            else:
                connections[index].execute("SELECT * FROM book_slot(%s, %s)", (user, slot))
            return "booked"
        except psycopg.Error as exc:
            return exc.sqlstate or repr(exc)

    try:
        outcomes = run_race(SQL_THREADS, slots, attempt)
    finally:
        for conn in connections:
            conn.close()
    assert_one_winner(admin, outcomes, SQL_THREADS, {"rest": "MBS01", "fhir": "MBS01"})


def test_rest_and_fhir_bookers_over_http(db, admin, world, api_route):
    patients = [add_patient(admin) for _ in range(HTTP_THREADS)]
    slots = [make_slot(admin, world, NOW + timedelta(days=2, hours=i))["id"] for i in range(HTTP_SLOTS)]
    app = create_app({"DATABASE_URL": api_route["url"], "JWT_SECRET": JWT_SECRET,  # direct, or via PgBouncer
                      "POOL_MIN_SIZE": HTTP_THREADS, "POOL_MAX_SIZE": HTTP_THREADS, **api_route["config"]})
    app.extensions["medbook_db"].pool.wait(timeout=30)
    clients = [app.test_client() for _ in range(HTTP_THREADS)]

    def attempt(index: int, slot: int) -> str:
        user, patient = patients[index]
        if index % 2:
            response = clients[index].post("/fhir/R4/Appointment", headers={
                **bearer(user), "Content-Type": "application/fhir+json"}, json={
                "resourceType": "Appointment", "status": "booked", "slot": [{"reference": f"Slot/{slot}"}],
                "participant": [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"}]})
            if response.status_code == 201:
                return "booked"
            issue = response.get_json(force=True)["issue"][0]
            return f"{response.status_code} {issue['code']} {issue['details']['coding'][0]['code']}"
        response = clients[index].post("/v1/appointments", json={"slot_id": slot}, headers=bearer(user))
        if response.status_code == 201:
            return "booked"
        return f"{response.status_code} {response.get_json()['code']}"

    try:
        outcomes = run_race(HTTP_THREADS, slots, attempt)
    finally:
        app.extensions["medbook_db"].close()
    # Losers: REST says 409 slot_unavailable; FHIR says 409 conflict, carrying the same problem code.
    assert_one_winner(admin, outcomes, HTTP_THREADS,
                      {"rest": "409 slot_unavailable", "fhir": "409 conflict slot_unavailable"})
