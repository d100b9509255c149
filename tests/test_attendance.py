"""Attendance: the practitioner records completed or no_show, at or after the start; both are final.

The slot of an attended appointment stays booked (it was used), so the
invariant check, the slot rules and the lists all treat an attended
appointment as holding its slot.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest
from conftest import NOW, api_connect, assert_problem, bearer, invariant_violations, make_slot, set_clock, sqlstate

START = NOW + timedelta(days=2)


@pytest.fixture
def appointment(admin, world) -> dict:
    slot = make_slot(admin, world, START)
    return admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot["id"])).fetchone()


def record(conn, function: str, user: int, appointment_id: int) -> dict:
    return conn.execute(f"SELECT * FROM {function}(%s, %s)", (user, appointment_id)).fetchone()


@pytest.mark.parametrize("function, status", [("complete_appointment", "completed"), ("mark_no_show", "no_show")])
def test_practitioner_records_attendance_from_the_start(api_conn, admin, world, appointment, function, status):
    set_clock(admin, START - timedelta(seconds=1))
    with sqlstate("MBA03"):
        record(api_conn, function, world.practitioner_user, appointment["id"])
    set_clock(admin, START)
    row = record(api_conn, function, world.practitioner_user, appointment["id"])
    assert (row["status"], row["slot_id"], row["cancelled_at"], row["rescheduled_to"]) == (
        status, appointment["slot_id"], None, None)
    stored = admin.execute("SELECT attendance_recorded_at, attendance_recorded_by FROM booking.appointments "
                           "WHERE id = %s", (appointment["id"],)).fetchone()
    assert stored == {"attendance_recorded_at": START, "attendance_recorded_by": world.practitioner_user}
    assert admin.execute("SELECT status FROM booking.availability_slots WHERE id = %s",
                         (appointment["slot_id"],)).fetchone()["status"] == "booked"
    history = api_conn.execute("SELECT * FROM list_appointment_history(%s, %s)",
                               (world.patient_user, appointment["id"])).fetchall()
    assert [(h["from_status"], h["to_status"], h["actor_user_id"], h["changed_at"]) for h in history] == [
        (None, "booked", world.patient_user, NOW), ("booked", status, world.practitioner_user, START)]
    assert invariant_violations(admin) == []


def test_attendance_is_final(api_conn, admin, world, appointment):
    set_clock(admin, START + timedelta(minutes=40))
    record(api_conn, "complete_appointment", world.practitioner_user, appointment["id"])
    for function in ("complete_appointment", "mark_no_show"):
        with sqlstate("MBA01"):
            record(api_conn, function, world.practitioner_user, appointment["id"])
    with sqlstate("MBA01"):
        api_conn.execute("SELECT cancel_appointment(%s, %s)", (world.practitioner_user, appointment["id"]))
    # The slot cannot be moved or deleted from under the record, nor booked again.
    with sqlstate("MBS03"):
        api_conn.execute("SELECT delete_slot(%s, %s)", (world.practitioner_user, appointment["slot_id"]))
    with sqlstate("MBS04"):
        record(api_conn, "book_slot", world.other_patient_user, appointment["slot_id"])
    # Not even the owner can change it behind the functions' back.
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
        admin.execute("UPDATE booking.appointments SET status = 'no_show' WHERE id = %s", (appointment["id"],))
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
        admin.execute("UPDATE booking.appointments SET attendance_recorded_at = now() WHERE id = %s",
                      (appointment["id"],))
    assert invariant_violations(admin) == []


def test_only_the_practitioner_records_attendance(api_conn, admin, world, appointment):
    set_clock(admin, START + timedelta(hours=1))
    for user, expected in [(world.patient_user, "MB403"), (world.other_practitioner_user, "MB403"),
                           (world.other_patient_user, "MB403"), (world.stranger_user, "MB403"),
                           (987654321, "MB401")]:
        with sqlstate(expected):
            record(api_conn, "complete_appointment", user, appointment["id"])
    with sqlstate("MB404"):
        record(api_conn, "mark_no_show", world.practitioner_user, 999999)


def test_a_cancelled_appointment_has_no_attendance(api_conn, admin, world, appointment):
    api_conn.execute("SELECT cancel_appointment(%s, %s)", (world.patient_user, appointment["id"]))
    set_clock(admin, START + timedelta(hours=1))
    with sqlstate("MBA01"):
        record(api_conn, "mark_no_show", world.practitioner_user, appointment["id"])


def test_the_constraint_refuses_attendance_before_the_start(admin, world, appointment):
    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        admin.execute("UPDATE booking.appointments SET status = 'completed', attendance_recorded_at = %s, "
                      "attendance_recorded_by = %s WHERE id = %s",
                      (START - timedelta(minutes=1), world.practitioner_user, appointment["id"]))
    assert caught.value.diag.constraint_name == "appointments_attended_after_start"


def test_complete_racing_no_show_and_cancel(db, admin, world):
    """At the start the practitioner's cancel window has just closed; complete and no-show race: one wins."""
    for round_no in range(10):
        slot = make_slot(admin, world, START + timedelta(hours=round_no))
        appointment = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot["id"])).fetchone()
        set_clock(admin, slot["start_time"])
        calls = [("complete_appointment", world.practitioner_user), ("mark_no_show", world.practitioner_user),
                 ("complete_appointment", world.practitioner_user)]
        connections = [api_connect(db) for _ in calls]
        barrier = threading.Barrier(len(calls))
        outcomes = [""] * len(calls)

        def run(i, calls=calls, connections=connections, barrier=barrier, outcomes=outcomes,
                appointment=appointment):
            barrier.wait(timeout=30)
            try:
                record(connections[i], calls[i][0], calls[i][1], appointment["id"])
                outcomes[i] = "ok"
            except psycopg.Error as exc:
                outcomes[i] = exc.sqlstate

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for conn in connections:
            conn.close()
        assert sorted(outcomes) == ["MBA01", "MBA01", "ok"], outcomes
        set_clock(admin, NOW)
    assert admin.execute("SELECT count(*) AS n FROM booking.appointment_history").fetchone()["n"] == 20
    assert invariant_violations(admin) == []


def test_http_attendance(client, admin, world, appointment):
    path = f"/v1/appointments/{appointment['id']}"
    practitioner = bearer(world.practitioner_user)
    assert_problem(client.post(f"{path}/complete", headers=practitioner), 422, "appointment_not_started")
    set_clock(admin, START + timedelta(minutes=5))
    assert_problem(client.post(f"{path}/no-show", headers=bearer(world.patient_user)), 403, "forbidden")
    assert_problem(client.post(f"{path}/no-show", headers=practitioner, json={"reason": "late"}),
                   400, "validation_error")
    response = client.post(f"{path}/no-show", headers=practitioner)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["status"] == "no_show"
    assert_problem(client.post(f"{path}/complete", headers=practitioner, json={}), 409, "appointment_not_active")
    assert client.get(path, headers=bearer(world.patient_user)).get_json()["status"] == "no_show"
    history = client.get(f"{path}/history", headers=bearer(world.patient_user)).get_json()["data"]
    assert history[-1] == {"from_status": "booked", "to_status": "no_show", "actor_user_id": world.practitioner_user,
                           "changed_at": (START + timedelta(minutes=5)).isoformat()}
    assert_problem(client.post("/v1/appointments/999999/complete", headers=practitioner), 404, "not_found")


def test_http_complete_with_a_key_and_an_empty_body(client, admin, world, appointment):
    set_clock(admin, START)
    headers = {**bearer(world.practitioner_user), "Idempotency-Key": "done-1"}
    path = f"/v1/appointments/{appointment['id']}/complete"
    first = client.post(path, headers=headers, json={})
    retry = client.post(path, headers=headers)
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.get_json() == first.get_json() and retry.headers["Idempotent-Replayed"] == "true"
    assert first.get_json()["status"] == "completed"
