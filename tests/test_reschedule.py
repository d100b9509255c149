"""Rescheduling: one transaction moves an appointment to another slot, or changes nothing.

SQL level (reschedule_appointment() as medbook_api), HTTP level (POST
/v1/appointments/{id}/reschedule), and races: concurrent reschedules of one
appointment, a reschedule racing a cancellation, and a reschedule racing a
booking of its target slot. Every race ends with one winner and
check_booking_invariants() empty.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest
from conftest import (
    NOW,
    add_patient,
    api_connect,
    assert_problem,
    bearer,
    invariant_violations,
    make_slot,
    set_clock,
    sqlstate,
)

START = NOW + timedelta(days=3)


def book(conn, user: int, slot_id: int) -> dict:
    return conn.execute("SELECT * FROM book_slot(%s, %s)", (user, slot_id)).fetchone()


def reschedule(conn, user: int, appointment_id: int, slot_id: int) -> dict:
    return conn.execute("SELECT * FROM reschedule_appointment(%s, %s, %s)",
                        (user, appointment_id, slot_id)).fetchone()


def state(admin) -> dict:
    """Everything a reschedule may change, to prove that a refused one changed nothing."""
    return {table: admin.execute(f"SELECT * FROM booking.{table} ORDER BY 1").fetchall()
            for table in ("appointments", "availability_slots", "appointment_history")}


def slot_status(admin, slot_id: int) -> str:
    return admin.execute("SELECT status FROM booking.availability_slots WHERE id = %s", (slot_id,)).fetchone()["status"]


@pytest.fixture
def moving(admin, world) -> tuple[dict, dict, dict]:
    """The patient's appointment on one slot, and a free later slot of the same practitioner."""
    old_slot = make_slot(admin, world, START)
    target = make_slot(admin, world, START + timedelta(days=1))
    return book(admin, world.patient_user, old_slot["id"]), old_slot, target


def test_patient_reschedules(api_conn, admin, world, moving):
    old, old_slot, target = moving
    new = reschedule(api_conn, world.patient_user, old["id"], target["id"])
    assert (new["status"], new["slot_id"], new["patient_id"], new["practitioner_id"]) == (
        "booked", target["id"], world.patient, world.practitioner)
    assert (new["start_time"], new["end_time"], new["booked_at"]) == (target["start_time"], target["end_time"], NOW)
    assert (new["rescheduled_from"], new["rescheduled_to"]) == (old["id"], None)
    after = api_conn.execute("SELECT * FROM get_appointment(%s, %s)", (world.patient_user, old["id"])).fetchone()
    assert (after["status"], after["cancellation_reason"], after["cancelled_by"], after["cancelled_at"]) == (
        "cancelled", "rescheduled", world.patient_user, NOW)
    assert (after["rescheduled_from"], after["rescheduled_to"], after["slot_id"]) == (None, new["id"], old_slot["id"])
    assert slot_status(admin, old_slot["id"]) == "available"
    assert slot_status(admin, target["id"]) == "booked"
    history = {aid: [(r["from_status"], r["to_status"], r["actor_user_id"], r["changed_at"]) for r in api_conn.execute(
        "SELECT * FROM list_appointment_history(%s, %s)", (world.patient_user, aid))] for aid in (old["id"], new["id"])}
    assert history == {old["id"]: [(None, "booked", world.patient_user, NOW),
                                   ("booked", "cancelled", world.patient_user, NOW)],
                       new["id"]: [(None, "booked", world.patient_user, NOW)]}
    # The freed slot can be booked at once by somebody else.
    assert book(api_conn, world.other_patient_user, old_slot["id"])["status"] == "booked"
    assert invariant_violations(admin) == []


def test_practitioner_reschedules_and_is_the_actor(api_conn, admin, world, moving):
    old, _, target = moving
    set_clock(admin, START - timedelta(hours=1))  # the patient could not any more
    with sqlstate("MBA02"):
        reschedule(api_conn, world.patient_user, old["id"], target["id"])
    new = reschedule(api_conn, world.practitioner_user, old["id"], target["id"])
    history = api_conn.execute("SELECT * FROM list_appointment_history(%s, %s)",
                               (world.patient_user, new["id"])).fetchall()
    assert [(h["to_status"], h["actor_user_id"]) for h in history] == [("booked", world.practitioner_user)]
    old_after = api_conn.execute("SELECT cancelled_by FROM get_appointment(%s, %s)",
                                 (world.patient_user, old["id"])).fetchone()
    assert old_after["cancelled_by"] == world.practitioner_user


def test_a_rescheduled_appointment_can_be_rescheduled_again(api_conn, admin, world, moving):
    first, _, second_slot = moving
    third_slot = make_slot(admin, world, START + timedelta(days=2))
    second = reschedule(api_conn, world.patient_user, first["id"], second_slot["id"])
    third = reschedule(api_conn, world.patient_user, second["id"], third_slot["id"])
    links = {r["id"]: (r["status"], r["rescheduled_from"], r["rescheduled_to"]) for r in admin.execute(
        "SELECT id, status, rescheduled_from, rescheduled_to FROM booking.appointments")}
    assert links == {first["id"]: ("cancelled", None, second["id"]),
                     second["id"]: ("cancelled", first["id"], third["id"]),
                     third["id"]: ("booked", second["id"], None)}
    # The old ones are done with: neither can be rescheduled or cancelled again.
    with sqlstate("MBA01"):
        reschedule(api_conn, world.patient_user, first["id"], second_slot["id"])
    with sqlstate("MBA01"):
        api_conn.execute("SELECT cancel_appointment(%s, %s)", (world.patient_user, second["id"]))
    assert invariant_violations(admin) == []


@pytest.mark.parametrize("nudge, expected", [(-1, None), (0, "MBA02"), (1, "MBA02")])
def test_patient_window_is_the_cancellation_window(api_conn, admin, world, moving, nudge, expected):
    old, _, target = moving
    admin.execute("SELECT set_booking_settings(%s, %s, NULL, '2 hours')", (world.practitioner_user, world.practitioner))
    set_clock(admin, START - timedelta(hours=2) + timedelta(seconds=nudge))
    if expected:
        with sqlstate(expected):
            reschedule(api_conn, world.patient_user, old["id"], target["id"])
    else:
        assert reschedule(api_conn, world.patient_user, old["id"], target["id"])["rescheduled_from"] == old["id"]


@pytest.mark.parametrize("nudge, expected", [(-1, None), (0, "MBA02")])
def test_practitioner_window_ends_at_the_start(api_conn, admin, world, moving, nudge, expected):
    old, _, target = moving
    set_clock(admin, START + timedelta(seconds=nudge))
    if expected:
        with sqlstate(expected):
            reschedule(api_conn, world.practitioner_user, old["id"], target["id"])
    else:
        assert reschedule(api_conn, world.practitioner_user, old["id"], target["id"])["status"] == "booked"


def test_refusals_change_nothing(api_conn, admin, world, moving):
    old, old_slot, target = moving
    other_practitioners = make_slot(admin, world, START, practitioner="other_practitioner")
    taken = make_slot(admin, world, START + timedelta(days=2))
    book(admin, world.other_patient_user, taken["id"])
    # A slot that has started: created while it was in the future.
    set_clock(admin, NOW - timedelta(days=1))
    started = make_slot(admin, world, NOW - timedelta(hours=2))
    set_clock(admin, NOW)
    before = state(admin)
    cases = [
        (world.patient_user, old["id"], other_practitioners["id"], "MBA04"),  # another practitioner's slot
        (world.patient_user, old["id"], old_slot["id"], "MBA04"),             # the slot it already has
        (world.patient_user, old["id"], taken["id"], "MBS01"),
        (world.patient_user, old["id"], started["id"], "MBS04"),
        (world.patient_user, old["id"], 999999, "MB404"),
        (world.patient_user, 999999, target["id"], "MB404"),
        (world.other_patient_user, old["id"], target["id"], "MB403"),
        (world.other_practitioner_user, old["id"], target["id"], "MB403"),
        (world.stranger_user, old["id"], target["id"], "MB403"),
        (987654321, old["id"], target["id"], "MB401"),
    ]
    for user, appointment_id, slot_id, expected in cases:
        with sqlstate(expected):
            reschedule(api_conn, user, appointment_id, slot_id)
    assert state(admin) == before


def test_only_a_booked_appointment_can_be_rescheduled(api_conn, admin, world, moving):
    old, old_slot, target = moving
    api_conn.execute("SELECT cancel_appointment(%s, %s)", (world.patient_user, old["id"]))
    with sqlstate("MBA01"):
        reschedule(api_conn, world.patient_user, old["id"], target["id"])
    attended = book(admin, world.patient_user, old_slot["id"])
    set_clock(admin, START)
    api_conn.execute("SELECT complete_appointment(%s, %s)", (world.practitioner_user, attended["id"]))
    with sqlstate("MBA01"):
        reschedule(api_conn, world.practitioner_user, attended["id"], target["id"])


# Races -------------------------------------------------------------------------------

def race(db, calls: list[tuple[str, tuple]]) -> list[str]:
    """Runs each (function, args) on its own API connection, released together; returns each outcome."""
    connections = [api_connect(db) for _ in calls]
    barrier = threading.Barrier(len(calls))
    outcomes: list[str] = [""] * len(calls)

    def run(index: int) -> None:
        function, args = calls[index]
        barrier.wait(timeout=30)
        try:
            placeholders = ", ".join(["%s"] * len(args))
            connections[index].execute(f"SELECT * FROM {function}({placeholders})", args).fetchone()
            outcomes[index] = "ok"
        except psycopg.Error as exc:
            outcomes[index] = exc.sqlstate or repr(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for conn in connections:
            conn.close()
    return outcomes


ROUNDS = 12


def test_concurrent_reschedules_of_one_appointment(db, admin, world):
    for round_no in range(ROUNDS):
        base = START + timedelta(days=round_no)
        old = book(admin, world.patient_user, make_slot(admin, world, base)["id"])
        targets = [make_slot(admin, world, base + timedelta(hours=h))["id"] for h in (1, 2, 3, 4)]
        outcomes = race(db, [("reschedule_appointment", (world.patient_user, old["id"], t)) for t in targets])
        assert outcomes.count("ok") == 1, outcomes
        assert set(outcomes) == {"ok", "MBA01"}, outcomes
        winner = targets[outcomes.index("ok")]
        assert [slot_status(admin, t) for t in targets] == ["booked" if t == winner else "available"
                                                             for t in targets]
        assert admin.execute("SELECT count(*) AS n FROM booking.appointments WHERE rescheduled_from = %s",
                             (old["id"],)).fetchone()["n"] == 1
    assert invariant_violations(admin) == []


def test_reschedule_racing_a_cancellation(db, admin, world):
    results = set()
    for round_no in range(ROUNDS):
        base = START + timedelta(days=round_no)
        old_slot = make_slot(admin, world, base)
        old = book(admin, world.patient_user, old_slot["id"])
        target = make_slot(admin, world, base + timedelta(hours=1))
        canceller = world.patient_user if round_no % 2 else world.practitioner_user
        outcomes = race(db, [("reschedule_appointment", (world.patient_user, old["id"], target["id"])),
                             ("cancel_appointment", (canceller, old["id"], "changed my mind"))])
        assert sorted(outcomes) in (["MBA01", "ok"],), outcomes
        results.add(tuple(outcomes))
        rescheduled = outcomes[0] == "ok"
        assert slot_status(admin, old_slot["id"]) == "available"
        assert slot_status(admin, target["id"]) == ("booked" if rescheduled else "available")
        row = admin.execute("SELECT cancellation_reason, rescheduled_to FROM booking.appointments WHERE id = %s",
                            (old["id"],)).fetchone()
        assert (row["cancellation_reason"] == "rescheduled") == rescheduled
        assert (row["rescheduled_to"] is not None) == rescheduled
    assert invariant_violations(admin) == []


def test_reschedule_racing_a_booking_of_its_target(db, admin, world):
    rivals = [add_patient(admin)[0] for _ in range(4)]
    for round_no in range(ROUNDS):
        base = START + timedelta(days=round_no)
        old_slot = make_slot(admin, world, base)
        old = book(admin, world.patient_user, old_slot["id"])
        target = make_slot(admin, world, base + timedelta(hours=1))
        outcomes = race(db, [("reschedule_appointment", (world.patient_user, old["id"], target["id"]))]
                        + [("book_slot", (rival, target["id"])) for rival in rivals])
        assert outcomes.count("ok") == 1, outcomes
        assert set(outcomes) <= {"ok", "MBS01"}, outcomes
        holders = admin.execute("SELECT patient_id, rescheduled_from FROM booking.appointments "
                                "WHERE slot_id = %s AND status = 'booked'", (target["id"],)).fetchall()
        assert len(holders) == 1
        if outcomes[0] == "ok":
            assert holders[0]["rescheduled_from"] == old["id"]
            assert slot_status(admin, old_slot["id"]) == "available"
        else:
            # The booking won: the old appointment is exactly as it was.
            row = admin.execute("SELECT status, slot_id, rescheduled_to FROM booking.appointments WHERE id = %s",
                                (old["id"],)).fetchone()
            assert row == {"status": "booked", "slot_id": old_slot["id"], "rescheduled_to": None}
            assert slot_status(admin, old_slot["id"]) == "booked"
    assert invariant_violations(admin) == []


def test_reschedule_cancel_and_book_storm(db, admin, world):
    """Several appointments moved among a few slots while others book and cancel them."""
    patients = [add_patient(admin)[0] for _ in range(6)]
    for round_no in range(6):
        base = START + timedelta(days=round_no)
        slots = [make_slot(admin, world, base + timedelta(hours=h))["id"] for h in range(6)]
        held = [book(admin, patients[i], slots[i]) for i in range(3)]
        calls = []
        for i, appointment in enumerate(held):
            calls.append(("reschedule_appointment", (patients[i], appointment["id"], slots[3 + i % 3])))
            calls.append(("reschedule_appointment", (patients[i], appointment["id"], slots[3 + (i + 1) % 3])))
        calls.append(("cancel_appointment", (world.practitioner_user, held[0]["id"], None)))
        calls += [("book_slot", (patients[3 + i], slots[3 + i])) for i in range(3)]
        calls += [("book_slot", (patients[5], slots[0]))]
        outcomes = race(db, calls)
        assert set(outcomes) <= {"ok", "MBA01", "MBS01"}, outcomes
        assert invariant_violations(admin) == []
        for appointment in held:  # each was moved at most once
            assert admin.execute("SELECT count(*) AS n FROM booking.appointments WHERE rescheduled_from = %s",
                                 (appointment["id"],)).fetchone()["n"] <= 1


# HTTP ---------------------------------------------------------------------------------

def test_http_reschedule(client, admin, world, moving):
    old, old_slot, target = moving
    response = client.post(f"/v1/appointments/{old['id']}/reschedule", json={"slot_id": target["id"]},
                           headers=bearer(world.patient_user))
    assert response.status_code == 201, response.get_data(as_text=True)
    new = response.get_json()
    assert response.headers["Location"] == f"/v1/appointments/{new['id']}"
    assert (new["rescheduled_from"], new["rescheduled_to"], new["slot_id"], new["status"]) == (
        old["id"], None, target["id"], "booked")
    got = client.get(f"/v1/appointments/{old['id']}", headers=bearer(world.practitioner_user)).get_json()
    assert (got["status"], got["cancellation_reason"], got["rescheduled_to"]) == ("cancelled", "rescheduled",
                                                                                  new["id"])
    history = client.get(f"/v1/appointments/{old['id']}/history", headers=bearer(world.patient_user))
    assert [h["to_status"] for h in history.get_json()["data"]] == ["booked", "cancelled"]
    listed = client.get(f"/v1/patients/{world.patient}/appointments", headers=bearer(world.patient_user))
    assert [a["id"] for a in listed.get_json()["data"]] == [new["id"]]
    assert slot_status(admin, old_slot["id"]) == "available"


def test_http_reschedule_refusals(client, admin, world, moving):
    old, old_slot, target = moving
    other = make_slot(admin, world, START, practitioner="other_practitioner")
    taken = make_slot(admin, world, START + timedelta(days=2))
    book(admin, world.other_patient_user, taken["id"])
    before = state(admin)
    path = f"/v1/appointments/{old['id']}/reschedule"
    headers = bearer(world.patient_user)
    assert_problem(client.post(path, json={"slot_id": other["id"]}, headers=headers), 422, "invalid_reschedule")
    assert_problem(client.post(path, json={"slot_id": old_slot["id"]}, headers=headers), 422, "invalid_reschedule")
    assert_problem(client.post(path, json={"slot_id": taken["id"]}, headers=headers), 409, "slot_unavailable")
    assert_problem(client.post(path, json={"slot_id": 999999}, headers=headers), 404, "not_found")
    assert_problem(client.post("/v1/appointments/999999/reschedule", json={"slot_id": target["id"]},
                               headers=headers), 404, "not_found")
    assert_problem(client.post(path, json={"slot_id": target["id"]}, headers=bearer(world.other_patient_user)),
                   403, "forbidden")
    set_clock(admin, START - timedelta(hours=1))
    assert_problem(client.post(path, json={"slot_id": target["id"]}, headers=headers),
                   422, "cancellation_window_closed")
    set_clock(admin, START + timedelta(days=1, minutes=1))
    assert_problem(client.post(path, json={"slot_id": target["id"]}, headers=bearer(world.practitioner_user)),
                   422, "cancellation_window_closed")
    set_clock(admin, NOW)
    assert state(admin) == before
    admin.execute("SELECT cancel_appointment(%s, %s)", (world.patient_user, old["id"]))
    after_cancel = state(admin)
    assert_problem(client.post(path, json={"slot_id": target["id"]}, headers=headers), 409, "appointment_not_active")
    assert state(admin) == after_cancel


def test_http_reschedule_to_a_started_slot(client, admin, world, moving):
    old, _, _ = moving
    set_clock(admin, NOW - timedelta(days=1))
    started = make_slot(admin, world, NOW - timedelta(hours=1))
    set_clock(admin, NOW)
    assert_problem(client.post(f"/v1/appointments/{old['id']}/reschedule", json={"slot_id": started["id"]},
                               headers=bearer(world.patient_user)), 422, "slot_in_past")


def test_http_reschedule_retry_with_a_key(client, admin, world, moving):
    old, _, target = moving
    headers = {**bearer(world.patient_user), "Idempotency-Key": "move-1"}
    path = f"/v1/appointments/{old['id']}/reschedule"
    first = client.post(path, json={"slot_id": target["id"]}, headers=headers)
    retry = client.post(path, json={"slot_id": target["id"]}, headers=headers)
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.get_json() == first.get_json() and retry.headers["Idempotent-Replayed"] == "true"
    assert admin.execute("SELECT count(*) AS n FROM booking.appointments").fetchone()["n"] == 2
