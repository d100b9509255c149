"""Idempotency-Key: a retried request is executed once, and gets the first outcome again.

SQL level: perform_idempotently() (db/functions/080) as medbook_api. HTTP level:
the Idempotency-Key header on the POST operations. Concurrency: two callers
with one key never both execute, and the second never waits. Faults (a backend
killed between the booking and its key record) are in tests/test_faults.py.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from conftest import (
    NOW,
    add_patient,
    api_connect,
    assert_problem,
    bearer,
    invariant_violations,
    iso,
    make_slot,
    set_clock,
    sqlstate,
)
from psycopg.types.json import Jsonb


def perform(conn: psycopg.Connection, user: int, key: str, operation: str, **arguments) -> dict:
    return conn.execute("SELECT * FROM perform_idempotently(%s, %s, %s, %s)",
                        (user, key, operation, Jsonb(arguments))).fetchone()


def count(admin: psycopg.Connection, table: str, where: str = "true") -> int:
    return admin.execute(f"SELECT count(*) AS n FROM booking.{table} WHERE {where}").fetchone()["n"]


# SQL ---------------------------------------------------------------------------------

def test_first_call_executes_and_a_retry_replays(api_conn, admin, world):
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    first = perform(api_conn, world.patient_user, "k-1", "book_slot", slot_id=slot["id"])
    assert first["replayed"] is False and first["error_sqlstate"] is None
    assert first["result"]["slot_id"] == slot["id"] and first["result"]["status"] == "booked"
    again = perform(api_conn, world.patient_user, "k-1", "book_slot", slot_id=slot["id"])
    assert again["replayed"] is True
    assert again["result"] == first["result"]
    assert count(admin, "appointments") == 1
    assert count(admin, "appointment_history") == 1
    # The replay is the stored response, not the current state: cancel, then retry the booking.
    admin.execute("SELECT cancel_appointment(%s, %s)", (world.patient_user, first["result"]["id"]))
    later = perform(api_conn, world.patient_user, "k-1", "book_slot", slot_id=slot["id"])
    assert later["replayed"] is True and later["result"]["status"] == "booked"
    assert count(admin, "appointments") == 1
    assert invariant_violations(admin) == []


def test_a_different_request_under_the_same_key_is_refused(api_conn, admin, world):
    first, second = (make_slot(admin, world, NOW + timedelta(days=d))["id"] for d in (2, 3))
    booked = perform(api_conn, world.patient_user, "k", "book_slot", slot_id=first)
    with sqlstate("MBI01"):
        perform(api_conn, world.patient_user, "k", "book_slot", slot_id=second)
    with sqlstate("MBI01"):
        perform(api_conn, world.patient_user, "k", "cancel_appointment", appointment_id=booked["result"]["id"])
    perform(api_conn, world.patient_user, "c", "cancel_appointment", appointment_id=booked["result"]["id"],
            reason="ill")
    with sqlstate("MBI01"):  # same path id, different body
        perform(api_conn, world.patient_user, "c", "cancel_appointment", appointment_id=booked["result"]["id"],
                reason="away")
    assert count(admin, "appointments") == 1
    assert count(admin, "availability_slots", f"id = {second} AND status = 'available'") == 1
    assert admin.execute("SELECT cancellation_reason FROM booking.appointments").fetchone() == {
        "cancellation_reason": "ill"}


def test_keys_belong_to_their_user(api_conn, admin, world):
    first, second = (make_slot(admin, world, NOW + timedelta(days=d))["id"] for d in (2, 3))
    mine = perform(api_conn, world.patient_user, "same-key", "book_slot", slot_id=first)
    theirs = perform(api_conn, world.other_patient_user, "same-key", "book_slot", slot_id=second)
    assert not mine["replayed"] and not theirs["replayed"]
    assert theirs["result"]["patient_id"] == world.other_patient
    assert count(admin, "appointments") == 2
    assert count(admin, "idempotency_keys") == 2


def test_a_refusal_is_stored_and_replayed(api_conn, admin, world):
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    taken = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.other_patient_user, slot["id"])).fetchone()
    refused = perform(api_conn, world.patient_user, "k", "book_slot", slot_id=slot["id"])
    assert (refused["replayed"], refused["result"], refused["error_sqlstate"]) == (False, None, "MBS01")
    assert refused["error_message"] == "the slot is no longer available"
    assert refused["error_hint"] == "Choose another slot."
    # The slot becomes free; the retry still gets the first outcome and books nothing.
    admin.execute("SELECT cancel_appointment(%s, %s)", (world.other_patient_user, taken["id"]))
    again = perform(api_conn, world.patient_user, "k", "book_slot", slot_id=slot["id"])
    assert (again["replayed"], again["error_sqlstate"], again["error_message"]) == (True, "MBS01",
                                                                                   refused["error_message"])
    assert count(admin, "appointments", "status = 'booked'") == 0


def test_a_refused_change_is_rolled_back_while_the_refusal_is_stored(api_conn, admin, world):
    """reschedule cancels the old appointment before it claims the new slot; a refusal undoes the cancel."""
    old_slot = make_slot(admin, world, NOW + timedelta(days=2))
    target = make_slot(admin, world, NOW + timedelta(days=3))
    appointment = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, old_slot["id"])).fetchone()
    admin.execute("SELECT * FROM book_slot(%s, %s)", (world.other_patient_user, target["id"]))
    before = admin.execute("SELECT * FROM booking.appointments ORDER BY id").fetchall()
    outcome = perform(api_conn, world.patient_user, "move", "reschedule_appointment",
                      appointment_id=appointment["id"], slot_id=target["id"])
    assert outcome["error_sqlstate"] == "MBS01"
    assert admin.execute("SELECT * FROM booking.appointments ORDER BY id").fetchall() == before
    assert count(admin, "idempotency_keys", "error_sqlstate = 'MBS01'") == 1
    assert invariant_violations(admin) == []


def test_server_errors_are_not_stored(db, api_conn, admin, world):
    """A lock timeout is a 503 for the client: nothing is stored, and the retry executes."""
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    api_conn.execute("SET lock_timeout = '200ms'")
    with psycopg.connect(db) as holder:
        holder.execute("SELECT * FROM booking.availability_slots WHERE id = %s FOR UPDATE", (slot["id"],))
        with sqlstate("55P03"):
            perform(api_conn, world.patient_user, "k", "book_slot", slot_id=slot["id"])
        holder.rollback()
    assert count(admin, "idempotency_keys") == 0
    retry = perform(api_conn, world.patient_user, "k", "book_slot", slot_id=slot["id"])
    assert retry["replayed"] is False and retry["result"]["status"] == "booked"


def test_the_same_request_is_compared_by_value(api_conn, admin, world):
    """Two spellings of one instant are one request; a reason of "" is not a reason of null."""
    start = NOW + timedelta(days=2)
    first = perform(api_conn, world.practitioner_user, "slot", "create_slot", practitioner_id=world.practitioner,
                    start_time=iso(start), end_time=iso(start + timedelta(minutes=30)))
    again = perform(api_conn, world.practitioner_user, "slot", "create_slot", practitioner_id=world.practitioner,
                    start_time=start.astimezone(ZoneInfo("Asia/Tokyo")).isoformat(),
                    end_time=iso(start + timedelta(minutes=30)))
    assert again["replayed"] is True and again["result"] == first["result"]
    appointment = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, first["result"]["id"]))
    appointment_id = appointment.fetchone()["id"]
    perform(api_conn, world.patient_user, "cancel", "cancel_appointment", appointment_id=appointment_id, reason="")
    with sqlstate("MBI01"):
        perform(api_conn, world.patient_user, "cancel", "cancel_appointment", appointment_id=appointment_id,
                reason=None)


def test_every_operation_can_be_made_idempotent(api_conn, admin, world):
    start = NOW + timedelta(days=2)
    args = {"practitioner_id": world.practitioner, "start_time": iso(start),
            "end_time": iso(start + timedelta(minutes=30))}
    slot = perform(api_conn, world.practitioner_user, "a", "create_slot", **args)["result"]
    other = make_slot(admin, world, start + timedelta(hours=1))
    third = make_slot(admin, world, start + timedelta(hours=2))
    booked = perform(api_conn, world.patient_user, "b", "book_slot", slot_id=slot["id"])["result"]
    moved = perform(api_conn, world.patient_user, "c", "reschedule_appointment", appointment_id=booked["id"],
                    slot_id=other["id"])["result"]
    assert moved["rescheduled_from"] == booked["id"]
    cancelled = perform(api_conn, world.patient_user, "d", "cancel_appointment", appointment_id=moved["id"],
                        reason="ill")["result"]
    assert cancelled["status"] == "cancelled" and cancelled["cancellation_reason"] == "ill"
    attended = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, third["id"])).fetchone()
    set_clock(admin, third["start_time"])
    done = perform(api_conn, world.practitioner_user, "e", "complete_appointment", appointment_id=attended["id"])
    assert done["result"]["status"] == "completed"
    assert perform(api_conn, world.practitioner_user, "f", "mark_no_show",
                   appointment_id=attended["id"])["error_sqlstate"] == "MBA01"
    for key, operation, user in [("a", "create_slot", world.practitioner_user), ("b", "book_slot", world.patient_user),
                                 ("c", "reschedule_appointment", world.patient_user),
                                 ("d", "cancel_appointment", world.patient_user),
                                 ("e", "complete_appointment", world.practitioner_user),
                                 ("f", "mark_no_show", world.practitioner_user)]:
        stored = admin.execute("SELECT operation FROM booking.idempotency_keys WHERE user_id = %s "
                               "AND idempotency_key = %s", (user, key)).fetchone()
        assert stored == {"operation": operation}
    assert invariant_violations(admin) == []


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there", "new\nline", "\x7f", None])
def test_malformed_keys_are_refused(api_conn, admin, world, key):
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    with pytest.raises(psycopg.Error) as caught:
        perform(api_conn, world.patient_user, key, "book_slot", slot_id=slot["id"])
    assert caught.value.sqlstate == "MB400"
    assert count(admin, "appointments") + count(admin, "idempotency_keys") == 0


def test_keys_of_every_printable_character_and_full_length_work(api_conn, admin, world):
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    key = "".join(chr(c) for c in range(0x20, 0x7F)) + "k" * (255 - 95)
    assert len(key) == 255
    assert perform(api_conn, world.patient_user, key, "book_slot", slot_id=slot["id"])["replayed"] is False
    assert perform(api_conn, world.patient_user, key, "book_slot", slot_id=slot["id"])["replayed"] is True


@pytest.mark.parametrize(("operation", "arguments"), [
    ("get_appointment", {"appointment_id": 1}),
    ("set_booking_clock", {}),
    ("book_slot", {"slot_id": 1, "patient_id": 2}),
    ("book_slot", {"slot": 1}),
])
def test_only_known_operations_and_their_parameters(api_conn, admin, world, operation, arguments):
    with sqlstate("MB400"):
        perform(api_conn, world.patient_user, "k", operation, **arguments)
    with sqlstate("MB400"):
        api_conn.execute("SELECT * FROM perform_idempotently(%s, 'k', 'book_slot', '[1]')", (world.patient_user,))
    assert count(admin, "idempotency_keys") == 0


def test_unknown_user_is_refused_before_anything(api_conn, admin, world):
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    with sqlstate("MB401"):
        perform(api_conn, 987654321, "k", "book_slot", slot_id=slot["id"])


def test_keys_expire_after_24_hours(api_conn, admin, world):
    first, second = (make_slot(admin, world, NOW + timedelta(days=d))["id"] for d in (2, 3))
    perform(api_conn, world.patient_user, "k", "book_slot", slot_id=first)
    set_clock(admin, NOW + timedelta(hours=24) - timedelta(seconds=1))
    with sqlstate("MBI01"):
        perform(api_conn, world.patient_user, "k", "book_slot", slot_id=second)
    set_clock(admin, NOW + timedelta(hours=24))
    fresh = perform(api_conn, world.patient_user, "k", "book_slot", slot_id=second)
    assert fresh["replayed"] is False and fresh["result"]["slot_id"] == second
    stored = admin.execute("SELECT created_at, expires_at FROM booking.idempotency_keys").fetchall()
    assert stored == [{"created_at": NOW + timedelta(hours=24), "expires_at": NOW + timedelta(hours=48)}]


def test_purge_deletes_expired_keys_only_in_batches(api_conn, admin, world):
    for i in range(5):
        slot = make_slot(admin, world, NOW + timedelta(days=2, hours=i))
        if i == 3:
            set_clock(admin, NOW + timedelta(hours=1))
        perform(api_conn, world.patient_user, f"k{i}", "book_slot", slot_id=slot["id"])
    set_clock(admin, NOW + timedelta(hours=24, minutes=30))
    assert admin.execute("SELECT purge_idempotency_keys(2) AS n").fetchone()["n"] == 2
    assert admin.execute("SELECT purge_idempotency_keys(2) AS n").fetchone()["n"] == 1
    assert admin.execute("SELECT purge_idempotency_keys() AS n").fetchone()["n"] == 0
    left = admin.execute("SELECT idempotency_key FROM booking.idempotency_keys ORDER BY 1").fetchall()
    assert [r["idempotency_key"] for r in left] == ["k3", "k4"]
    with sqlstate("MB400"):
        admin.execute("SELECT purge_idempotency_keys(0)")
    assert count(admin, "appointments") == 5  # the purge touches keys only


# Concurrency -----------------------------------------------------------------------

def test_a_key_in_use_is_refused_at_once(db, api_conn, admin, world):
    """While the first request's transaction runs, the second gets MBI02 without waiting."""
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    with api_connect(db) as first:
        first.autocommit = False
        perform(first, world.patient_user, "k", "book_slot", slot_id=slot["id"])
        started = time.monotonic()
        api_conn.execute("SET lock_timeout = '5s'")
        with sqlstate("MBI02"):
            perform(api_conn, world.patient_user, "k", "book_slot", slot_id=slot["id"])
        assert time.monotonic() - started < 1.0
        first.commit()
    replay = perform(api_conn, world.patient_user, "k", "book_slot", slot_id=slot["id"])
    assert replay["replayed"] is True
    assert count(admin, "appointments") == 1


def test_a_rolled_back_first_request_leaves_the_key_free(db, api_conn, admin, world):
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    with api_connect(db) as first:
        first.autocommit = False
        perform(first, world.patient_user, "k", "book_slot", slot_id=slot["id"])
        first.rollback()
    again = perform(api_conn, world.patient_user, "k", "book_slot", slot_id=slot["id"])
    assert again["replayed"] is False and again["result"]["status"] == "booked"
    assert count(admin, "appointments") == 1 and count(admin, "idempotency_keys") == 1


def test_many_concurrent_requests_with_one_key_execute_once(db, admin, world):
    threads_count, rounds = 16, 8
    connections = [api_connect(db) for _ in range(threads_count)]
    try:
        for round_no in range(rounds):
            slot = make_slot(admin, world, NOW + timedelta(days=2, hours=round_no))
            barrier = threading.Barrier(threads_count)
            outcomes: list[str] = []
            lock = threading.Lock()

            def run(conn, slot=slot, barrier=barrier, outcomes=outcomes, lock=lock, key=f"round-{round_no}"):
                barrier.wait(timeout=30)
                try:
                    row = perform(conn, world.patient_user, key, "book_slot", slot_id=slot["id"])
                    outcome = "replayed" if row["replayed"] else "executed"
                except psycopg.Error as exc:
                    outcome = exc.sqlstate
                with lock:
                    outcomes.append(outcome)

            threads = [threading.Thread(target=run, args=(conn,)) for conn in connections]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert outcomes.count("executed") == 1, outcomes
            assert set(outcomes) <= {"executed", "replayed", "MBI02"}, outcomes
        assert count(admin, "appointments") == rounds
        assert count(admin, "idempotency_keys") == rounds
        assert invariant_violations(admin) == []
    finally:
        for conn in connections:
            conn.close()


# HTTP ---------------------------------------------------------------------------------

def post(client, path: str, user: int, body: dict | None, key: str | None, **headers):
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(path, json=body, headers={**bearer(user), **headers})


def test_a_retried_booking_after_a_dropped_response_returns_the_same_appointment(client, admin, world):
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    first = post(client, "/v1/appointments", world.patient_user, {"slot_id": slot["id"]}, "phone-retry-1")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    # The response is lost on the way to the phone; it retries with the same key.
    del first
    retry = post(client, "/v1/appointments", world.patient_user, {"slot_id": slot["id"]}, "phone-retry-1")
    assert retry.status_code == 201, retry.get_data(as_text=True)
    assert retry.headers["Idempotent-Replayed"] == "true"
    appointments = admin.execute("SELECT id FROM booking.appointments").fetchall()
    assert len(appointments) == 1
    assert retry.get_json()["id"] == appointments[0]["id"]
    assert retry.headers["Location"] == f"/v1/appointments/{appointments[0]['id']}"
    # Without the key the same retry is what clients suffered before: slot_unavailable.
    assert_problem(post(client, "/v1/appointments", world.patient_user, {"slot_id": slot["id"]}, None),
                   409, "slot_unavailable")


def test_http_replays_are_the_first_response(client, admin, world):
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    first = post(client, "/v1/appointments", world.patient_user, {"slot_id": slot["id"]}, "k")
    # Spelled differently (whitespace) it is the same request.
    again = client.post("/v1/appointments", data=f' {{ "slot_id" : {slot["id"]} }} ',
                        content_type="application/json",
                        headers={**bearer(world.patient_user), "Idempotency-Key": "k"})
    assert again.status_code == 201 and again.get_json() == first.get_json()


def test_http_a_repeated_key_header_is_one_key_its_copies_joined(client, admin, world):
    # WSGI hands a repeated header over as one value, its copies joined by commas (", " in
    # werkzeug's test client, "," under granian), and that value is the key: "a" twice is
    # the key "a, a" here, not "a".
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    twice = [("Idempotency-Key", "a"), ("Idempotency-Key", "a"), *bearer(world.patient_user).items()]
    first = client.post("/v1/appointments", json={"slot_id": slot["id"]}, headers=twice)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    retry = post(client, "/v1/appointments", world.patient_user, {"slot_id": slot["id"]}, "a, a")
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json() == first.get_json()
    assert_problem(post(client, "/v1/appointments", world.patient_user, {"slot_id": slot["id"]}, "a"),
                   409, "slot_unavailable")


def test_http_different_request_same_key_is_422(client, admin, world):
    first, second = (make_slot(admin, world, NOW + timedelta(days=d))["id"] for d in (2, 3))
    booked = post(client, "/v1/appointments", world.patient_user, {"slot_id": first}, "k")
    before = admin.execute("SELECT * FROM booking.availability_slots ORDER BY id").fetchall()
    body = assert_problem(post(client, "/v1/appointments", world.patient_user, {"slot_id": second}, "k"),
                          422, "idempotency_key_reused")
    assert "hint" in body
    assert_problem(post(client, f"/v1/appointments/{booked.get_json()['id']}/cancel", world.patient_user,
                        {"reason": "x"}, "k"), 422, "idempotency_key_reused")
    assert admin.execute("SELECT * FROM booking.availability_slots ORDER BY id").fetchall() == before
    assert count(admin, "appointments") == 1


def test_http_refusals_are_replayed_with_their_status(client, admin, world):
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    taken = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.other_patient_user, slot["id"])).fetchone()
    first = assert_problem(post(client, "/v1/appointments", world.patient_user, {"slot_id": slot["id"]}, "k"),
                           409, "slot_unavailable")
    admin.execute("SELECT cancel_appointment(%s, %s)", (world.other_patient_user, taken["id"]))
    replay = post(client, "/v1/appointments", world.patient_user, {"slot_id": slot["id"]}, "k")
    body = assert_problem(replay, 409, "slot_unavailable")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert (body["detail"], body.get("hint")) == (first["detail"], first.get("hint"))
    # A 404 (an executed operation's refusal) is stored too.
    assert_problem(post(client, "/v1/appointments", world.patient_user, {"slot_id": 999999}, "k404"),
                   404, "not_found")
    replay = post(client, "/v1/appointments", world.patient_user, {"slot_id": 999999}, "k404")
    assert_problem(replay, 404, "not_found")
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_http_cancel_retry_gets_200_not_409(client, admin, world):
    slot = make_slot(admin, world, NOW + timedelta(days=3))
    appointment = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot["id"])).fetchone()
    path = f"/v1/appointments/{appointment['id']}/cancel"
    first = post(client, path, world.patient_user, {"reason": "ill"}, "cancel-1")
    retry = post(client, path, world.patient_user, {"reason": "ill"}, "cancel-1")
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.get_json() == first.get_json() and retry.headers["Idempotent-Replayed"] == "true"
    assert_problem(post(client, path, world.patient_user, {"reason": "ill"}, None), 409, "appointment_not_active")


def test_http_slot_creation_retry(client, admin, world):
    start = NOW + timedelta(days=2)
    body = {"start_time": iso(start), "end_time": iso(start + timedelta(minutes=30))}
    path = f"/v1/practitioners/{world.practitioner}/slots"
    first = post(client, path, world.practitioner_user, body, "slot-1")
    retry = post(client, path, world.practitioner_user, body, "slot-1")
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.get_json() == first.get_json()
    assert (retry.headers["Location"], retry.headers["ETag"]) == (first.headers["Location"], first.headers["ETag"])
    assert count(admin, "availability_slots") == 1
    assert_problem(post(client, path, world.practitioner_user, body, None), 409, "slot_overlap")


def test_http_key_in_use_is_409_with_retry_after(db, client, admin, world):
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    with api_connect(db) as first:
        first.autocommit = False
        perform(first, world.patient_user, "busy", "book_slot", slot_id=slot["id"])
        started = time.monotonic()
        response = post(client, "/v1/appointments", world.patient_user, {"slot_id": slot["id"]}, "busy")
        assert time.monotonic() - started < 1.5
        assert_problem(response, 409, "idempotency_key_in_use")
        assert response.headers["Retry-After"] == "1"
        first.commit()
    replay = post(client, "/v1/appointments", world.patient_user, {"slot_id": slot["id"]}, "busy")
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"


def test_http_two_concurrent_requests_with_one_key_execute_once(app, admin, world):
    slots = [make_slot(admin, world, NOW + timedelta(days=2, hours=i))["id"] for i in range(6)]
    for index, slot in enumerate(slots):
        barrier = threading.Barrier(2)
        results: list = []

        def run(slot=slot, barrier=barrier, results=results, key=f"double-tap-{index}"):
            client = app.test_client()
            barrier.wait(timeout=30)
            results.append(post(client, "/v1/appointments", world.patient_user, {"slot_id": slot}, key))

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        statuses = sorted(r.status_code for r in results)
        executed = [r for r in results if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
        assert len(executed) == 1, statuses
        assert statuses in ([201, 201], [201, 409]), statuses
        for response in results:
            if response.status_code == 409:
                assert response.get_json()["code"] == "idempotency_key_in_use"
            else:
                assert response.get_json()["id"] == executed[0].get_json()["id"]
    assert count(admin, "appointments") == len(slots)
    assert invariant_violations(admin) == []


def test_http_keys_of_another_patient_do_not_collide(client, admin, world):
    _, third = add_patient(admin)
    first, second = (make_slot(admin, world, NOW + timedelta(days=d))["id"] for d in (2, 3))
    a = post(client, "/v1/appointments", world.patient_user, {"slot_id": first}, "shared")
    b = post(client, "/v1/appointments", world.other_patient_user, {"slot_id": second}, "shared")
    assert (a.status_code, b.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in b.headers
    assert third  # a third patient exists and has no keys
    assert count(admin, "idempotency_keys") == 2


# The bulk create (POST /v1/practitioners/{id}/slots/bulk) ---------------------------

def bulk_body(*starts) -> dict:
    return {"slots": [{"start_time": iso(start), "end_time": iso(start + timedelta(minutes=30))} for start in starts]}


def test_bulk_create_is_executed_once_and_replayed(client, admin, world):
    path = f"/v1/practitioners/{world.practitioner}/slots/bulk"
    body = bulk_body(NOW + timedelta(days=2), NOW + timedelta(days=2, hours=1))
    first = post(client, path, world.practitioner_user, body, "bulk-1")
    retry = post(client, path, world.practitioner_user, body, "bulk-1")
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.get_json() == first.get_json() and len(first.get_json()["data"]) == 2
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert count(admin, "availability_slots") == 2
    # Another list under the same key is another request.
    assert_problem(post(client, path, world.practitioner_user, bulk_body(NOW + timedelta(days=3)), "bulk-1"),
                   422, "idempotency_key_reused")


def test_bulk_refusal_is_replayed_with_its_item_errors(client, admin, world):
    path = f"/v1/practitioners/{world.practitioner}/slots/bulk"
    make_slot(admin, world, NOW + timedelta(days=2))
    body = bulk_body(NOW + timedelta(days=4), NOW + timedelta(days=2), NOW - timedelta(hours=3))
    first = post(client, path, world.practitioner_user, body, "bulk-2")
    problem = first.get_json()
    assert first.status_code in (409, 422) and len(problem["errors"]) == 2
    retry = post(client, path, world.practitioner_user, body, "bulk-2")
    assert retry.status_code == first.status_code and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json()["errors"] == problem["errors"]
    assert retry.get_json()["code"] == problem["code"]
    assert count(admin, "availability_slots") == 1
    stored = admin.execute("SELECT error_detail FROM booking.idempotency_keys").fetchone()["error_detail"]
    assert stored.startswith("[{")
