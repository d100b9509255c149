"""The FHIR facade covers the booking lifecycle of /v1: versions, safe retries, rescheduling, events.

- Versions: a Slot's and an Appointment's version (the column the REST ETags
  use for slots) is meta.versionId and the ETag W/"n"; an update or patch with
  If-Match applies only to that version (412 OperationOutcome, issue conflict,
  nothing changed), decided by cancel_appointment() / replace_appointment()
  under the row lock.
- Safe retries: POST Appointment honours the Idempotency-Key of POST
  /v1/appointments (perform_idempotently()); If-None-Exist is refused.
- Rescheduling: the old and the new appointment link to each other through
  extensions, which a PUT must send back as read.
- Events: a FHIR create and a FHIR cancel append the same booking events, with
  the REST resource as payload, as REST does.

Every response passes the OpenAPI and fhir.resources R4B checks of the client fixture.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest
from conftest import NOW, api_connect, bearer, invariant_violations, make_slot, set_clock, sqlstate
from psycopg.types.json import Jsonb
from test_etags import race
from test_events import events, last_event_id
from test_fhir import BASE, FHIR, appointment_body, book, entries, fhir_get, outcome, put

from api.fhir import resources

START = NOW + timedelta(days=3)
PATCH = "application/json-patch+json"
CANCEL = [{"op": "replace", "path": "/status", "value": "cancelled"}]


@pytest.fixture
def slots(admin, world):
    return [make_slot(admin, world, START + timedelta(hours=i)) for i in range(4)]


def row(admin, appointment_id) -> dict:
    return admin.execute("SELECT * FROM booking.appointments WHERE id = %s", (int(appointment_id),)).fetchone()


def patch(client, user, appointment_id, operations=CANCEL, **headers):
    return client.patch(f"{BASE}/Appointment/{appointment_id}", json=operations,
                        headers={**bearer(user), "Content-Type": PATCH, **headers})


def put_if(client, user, resource, if_match):
    return client.put(f"{BASE}/Appointment/{resource['id']}", json=resource,
                      headers={**bearer(user), "Content-Type": FHIR, "If-Match": if_match})


def post(client, world, slot_id, key=None, **changes):
    headers = {**bearer(world.patient_user), "Content-Type": FHIR}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"{BASE}/Appointment", json=appointment_body(world, slot_id, **changes), headers=headers)


# Versions -----------------------------------------------------------------------------------

def test_capability_statement_says_what_versioning_is_supported(client):
    statement = client.get(f"{BASE}/metadata").get_json(force=True)
    by_type = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {t: r["versioning"] for t, r in by_type.items()} == {
        "Schedule": "no-version", "Slot": "versioned", "Appointment": "versioned", "Patient": "no-version",
        "Practitioner": "no-version"}
    for resource in by_type.values():
        assert "vread" not in {i["code"] for i in resource["interaction"]} and resource["readHistory"] is False
        assert resource["conditionalCreate"] is False and resource["conditionalUpdate"] is False
    assert "If-Match" in by_type["Appointment"]["documentation"]
    assert "Idempotency-Key" in by_type["Appointment"]["documentation"]


def test_every_appointment_carries_its_version_as_meta_and_etag(client, admin, world, slots):
    created = book(client, world, slots[0]["id"])
    assert created.status_code == 201 and created.headers["ETag"] == 'W/"1"'
    appointment = created.get_json(force=True)
    assert appointment["meta"] == {"versionId": "1"}
    read = fhir_get(client, f"Appointment/{appointment['id']}", world.practitioner_user)
    assert read.headers["ETag"] == 'W/"1"' and read.get_json(force=True) == appointment
    found = fhir_get(client, "Appointment", world.patient_user, patient=f"Patient/{world.patient}")
    assert [a["meta"] for a in entries(found)] == [{"versionId": "1"}]
    assert [s["meta"] for s in entries(fhir_get(client, "Slot", world.practitioner_user,
                                                schedule=f"Schedule/{world.practitioner}", status="busy"))] \
        == [{"versionId": "2"}]
    cancelled = patch(client, world.patient_user, appointment["id"], **{"If-Match": 'W/"1"'})
    assert cancelled.status_code == 200 and cancelled.headers["ETag"] == 'W/"2"'
    assert cancelled.get_json(force=True)["meta"] == {"versionId": "2"}
    # Whatever path changes the row makes a new version: here the slot's deletion clears slot_id.
    admin.execute("SELECT delete_slot(%s, %s)", (world.practitioner_user, slots[0]["id"]))
    gone = fhir_get(client, f"Appointment/{appointment['id']}", world.patient_user)
    assert gone.headers["ETag"] == 'W/"3"' and "slot" not in gone.get_json(force=True)


def test_a_stale_if_match_is_412_conflict_and_changes_nothing(client, admin, world, slots):
    appointment = book(client, world, slots[0]["id"]).get_json(force=True)
    # Another path changed the row since this client read version 1 (a DBA's UPDATE makes a version too).
    admin.execute("UPDATE booking.appointments SET cancellation_reason = NULL WHERE id = %s",
                  (int(appointment["id"]),))
    before = row(admin, appointment["id"])
    assert before["version"] == 2
    cancel = {**appointment, "status": "cancelled", "cancelationReason": {"text": "stale"}}
    for response in (put_if(client, world.patient_user, cancel, 'W/"1"'),
                     put_if(client, world.patient_user, appointment, 'W/"1"'),   # even a no-op
                     patch(client, world.patient_user, appointment["id"], **{"If-Match": 'W/"1"'}),
                     patch(client, world.patient_user, appointment["id"], **{"If-Match": 'W/"7", "8"'})):
        outcome(response, 412, "conflict", "precondition_failed")
    assert row(admin, appointment["id"]) == before
    assert fhir_get(client, f"Slot/{slots[0]['id']}", world.patient_user).get_json(force=True)["status"] == "busy"
    # With the current version (weak or strong, alone or in a list) the cancellation goes through.
    done = put_if(client, world.patient_user, cancel, 'W/"9", W/"2"')
    assert done.status_code == 200 and done.headers["ETag"] == 'W/"3"'
    assert done.get_json(force=True)["status"] == "cancelled"
    # Repeating it with the version it now has is the unchanged no-op; with the old one, 412 (not 409).
    assert put_if(client, world.patient_user, done.get_json(force=True), '"3"').status_code == 200
    outcome(patch(client, world.patient_user, appointment["id"], **{"If-Match": 'W/"2"'}), 412, "conflict",
            "precondition_failed")
    outcome(patch(client, world.patient_user, appointment["id"], **{"If-Match": "*"}), 409, "business-rule",
            "appointment_not_active")
    assert invariant_violations(admin) == []


@pytest.mark.parametrize("value", ["1", 'W/"1', 'W/"1",', "", 'W/1', '"1" "2"'])
def test_a_malformed_if_match_is_400_and_changes_nothing(client, admin, world, slots, value):
    appointment = book(client, world, slots[0]["id"]).get_json(force=True)
    before = row(admin, appointment["id"])
    outcome(patch(client, world.patient_user, appointment["id"], **{"If-Match": value}), 400, "invalid",
            "validation_error")
    outcome(put_if(client, world.patient_user, {**appointment, "status": "cancelled"}, value), 400, "invalid",
            "validation_error")
    assert row(admin, appointment["id"]) == before


def test_the_precondition_comes_after_access_and_existence(client, world, slots):
    appointment = book(client, world, slots[0]["id"]).get_json(force=True)
    outcome(patch(client, world.other_patient_user, appointment["id"], **{"If-Match": 'W/"9"'}), 403, "forbidden")
    outcome(patch(client, world.patient_user, "999999999", **{"If-Match": 'W/"9"'}), 404, "not-found")


def test_sql_if_match_on_cancel_and_replace(api_conn, admin, world, slots):
    booked = api_conn.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slots[0]["id"])).fetchone()
    assert booked["version"] == 1
    facts = (booked["slot_id"], booked["patient_id"], booked["practitioner_id"], booked["start_time"],
             booked["end_time"])
    with sqlstate("MBP01"):
        api_conn.execute("SELECT * FROM cancel_appointment(%s, %s, NULL, '{2}')", (world.patient_user, booked["id"]))
    with sqlstate("MBP01"):
        api_conn.execute("SELECT * FROM cancel_appointment(%s, %s, NULL, '{}')", (world.patient_user, booked["id"]))
    with sqlstate("MBP01"):
        api_conn.execute("SELECT * FROM replace_appointment(%s, %s, 'cancelled', %s, %s, %s, %s, %s, NULL, NULL, "
                         "NULL, '{2}')", (world.patient_user, booked["id"], *facts))
    assert row(admin, booked["id"])["status"] == "booked"
    # Access comes before the precondition.
    with sqlstate("MB403"):
        api_conn.execute("SELECT * FROM cancel_appointment(%s, %s, NULL, '{2}')",
                         (world.other_patient_user, booked["id"]))
    cancelled = api_conn.execute("SELECT * FROM replace_appointment(%s, %s, 'cancelled', %s, %s, %s, %s, %s, "
                                 "p_if_match => '{1}')", (world.patient_user, booked["id"], *facts)).fetchone()
    assert cancelled["status"] == "cancelled" and cancelled["version"] == 2


def test_a_cancellation_waiting_on_the_row_lock_rechecks_the_version(db, admin, world, slots):
    """The second canceller read version 1 before the first committed: it gets MBP01, not MBA01."""
    booked = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slots[0]["id"])).fetchone()
    with api_connect(db) as first, api_connect(db) as second:
        first.autocommit = False
        first.execute("SELECT * FROM cancel_appointment(%s, %s, 'first', '{1}')", (world.patient_user, booked["id"]))
        outcome: list = []

        def cancel() -> None:
            try:
                second.execute("SELECT * FROM cancel_appointment(%s, %s, 'second', '{1}')",
                               (world.practitioner_user, booked["id"]))
                outcome.append("ok")
            except psycopg.Error as exc:
                outcome.append(exc.sqlstate)

        thread = threading.Thread(target=cancel)
        thread.start()
        pid = second.info.backend_pid
        while admin.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                            (pid,)).fetchone()["wait_event_type"] != "Lock":
            thread.join(0.01)
            assert thread.is_alive(), outcome   # it must wait for the first, not finish on its own
        first.commit()
        thread.join(30)
    assert outcome == ["MBP01"]
    stored = row(admin, booked["id"])
    assert stored["cancellation_reason"] == "first" and stored["version"] == 2


def test_cancellers_holding_one_version_one_wins(db, admin, world, slots):
    for slot in slots:
        booked = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot["id"])).fetchone()
        outcomes = race(db, [("SELECT * FROM cancel_appointment(%s, %s, %s, '{1}')", (user, booked["id"], reason))
                             for user, reason in ((world.patient_user, "a"), (world.practitioner_user, "b"),
                                                  (world.patient_user, "c"))])
        assert sorted(outcomes) == ["MBP01", "MBP01", "ok"], outcomes
        assert row(admin, booked["id"])["version"] == 2
    assert invariant_violations(admin) == []


# Safe retries ---------------------------------------------------------------------------------

def count(admin, table="appointments") -> int:
    return admin.execute(f"SELECT count(*) AS n FROM booking.{table}").fetchone()["n"]


def test_a_retried_create_after_a_dropped_response_returns_the_same_appointment(client, admin, world, slots):
    first = post(client, world, slots[0]["id"], "fhir-retry-1")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    created = first.get_json(force=True)
    del first   # lost on the way to the client, which retries with the same key
    retry = post(client, world, slots[0]["id"], "fhir-retry-1")
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json(force=True) == created
    assert retry.headers["Location"] == f"http://localhost{BASE}/Appointment/{created['id']}"
    assert retry.headers["ETag"] == 'W/"1"'
    assert count(admin) == 1 and count(admin, "appointment_history") == 1
    # Without the key, the retry is what clients suffered before: the slot is taken (by them).
    outcome(post(client, world, slots[0]["id"]), 409, "conflict", "slot_unavailable")
    # The replay is the first response even after the appointment changed.
    patch(client, world.patient_user, created["id"])
    again = post(client, world, slots[0]["id"], "fhir-retry-1")
    assert again.status_code == 201 and again.get_json(force=True)["status"] == "booked"
    assert count(admin) == 1


def test_a_different_request_under_the_same_key_is_refused_and_books_nothing(client, admin, world, slots):
    assert post(client, world, slots[0]["id"], "k").status_code == 201
    for response in (post(client, world, slots[1]["id"], "k"),        # another slot
                     post(client, world, slots[0]["id"], "k", start="2027-03-04T12:00:00Z"),   # said more
                     client.post("/v1/appointments", json={"slot_id": slots[0]["id"]},     # a REST request
                                 headers={**bearer(world.patient_user), "Idempotency-Key": "k"})):
        assert response.status_code == 422
    outcome(post(client, world, slots[1]["id"], "k"), 422, "business-rule", "idempotency_key_reused")
    assert count(admin) == 1
    assert fhir_get(client, f"Slot/{slots[1]['id']}", world.patient_user).get_json(force=True)["status"] == "free"
    # A key first used by REST is as much taken for FHIR.
    assert client.post("/v1/appointments", json={"slot_id": slots[2]["id"]},
                       headers={**bearer(world.patient_user), "Idempotency-Key": "rest"}).status_code == 201
    outcome(post(client, world, slots[2]["id"], "rest"), 422, "business-rule", "idempotency_key_reused")


def test_a_refusal_is_stored_and_replayed_with_its_status(client, admin, world, slots):
    admin.execute("SELECT book_slot(%s, %s)", (world.other_patient_user, slots[0]["id"]))
    refused = post(client, world, slots[0]["id"], "late")
    outcome(refused, 409, "conflict", "slot_unavailable")
    assert "Idempotent-Replayed" not in refused.headers
    taken = admin.execute("SELECT id FROM booking.appointments").fetchone()["id"]
    admin.execute("SELECT cancel_appointment(%s, %s)", (world.other_patient_user, taken))
    replay = post(client, world, slots[0]["id"], "late")   # the slot is free now, but the outcome was stored
    outcome(replay, 409, "conflict", "slot_unavailable")
    assert replay.headers["Idempotent-Replayed"] == "true"
    mismatch = post(client, world, slots[1]["id"], "said-wrong", start="2027-03-04T09:00:00Z")
    outcome(mismatch, 422, "business-rule", "appointment_mismatch")
    assert post(client, world, slots[1]["id"], "said-wrong", start="2027-03-04T09:00:00Z").headers[
        "Idempotent-Replayed"] == "true"
    assert count(admin) == 1


def test_a_key_in_use_is_409_transient_with_retry_after(db, client, admin, world, slots):
    with api_connect(db) as first:
        first.autocommit = False
        first.execute("SELECT * FROM perform_idempotently(%s, 'busy', 'book_slot_expecting', %s)",
                      (world.patient_user, Jsonb({"slot_id": slots[0]["id"], "patient_id": world.patient,
                                                  "practitioner_id": None, "start_time": None, "end_time": None})))
        response = post(client, world, slots[0]["id"], "busy")
        outcome(response, 409, "transient", "idempotency_key_in_use")
        assert response.headers["Retry-After"] == "1"
        first.commit()
    replay = post(client, world, slots[0]["id"], "busy")
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert count(admin) == 1


@pytest.mark.parametrize("headers", [{"Idempotency-Key": ""}, {"Idempotency-Key": "caf\u00e9"},
                                     {"Idempotency-Key": "x" * 256}, {"If-None-Exist": "slot=Slot/1"}])
def test_malformed_keys_and_conditional_create_are_400_and_book_nothing(client, admin, world, slots, headers):
    response = client.post(f"{BASE}/Appointment", json=appointment_body(world, slots[0]["id"]),
                           headers={**bearer(world.patient_user), "Content-Type": FHIR, **headers})
    outcome(response, 400, "not-supported" if "If-None-Exist" in headers else "invalid", "validation_error")
    assert count(admin) + count(admin, "idempotency_keys") == 0


def test_sql_digests_of_the_other_operations_are_unchanged(api_conn, admin, world, slots):
    """Keys stored before book_slot_expecting existed still match their retries."""
    api_conn.execute("SELECT * FROM perform_idempotently(%s, 'old', 'book_slot', %s)",
                     (world.patient_user, Jsonb({"slot_id": slots[0]["id"]})))
    stored = admin.execute("SELECT request_digest FROM booking.idempotency_keys WHERE idempotency_key = 'old'"
                           ).fetchone()["request_digest"]
    formula = admin.execute("SELECT sha256(convert_to(jsonb_build_array('book_slot', %s::bigint, NULL::bigint, "
                            "NULL::bigint, NULL::numeric, NULL::numeric, NULL::text, NULL::jsonb, NULL::jsonb)::text, "
                            "'UTF8')) AS d", (slots[0]["id"],)).fetchone()["d"]
    assert stored == formula
    # book_slot_expecting's digest includes the patient: another patient id under the key is another request.
    arguments = {"slot_id": slots[1]["id"], "patient_id": world.patient, "practitioner_id": None,
                 "start_time": None, "end_time": None}
    api_conn.execute("SELECT * FROM perform_idempotently(%s, 'new', 'book_slot_expecting', %s)",
                     (world.patient_user, Jsonb(arguments)))
    with sqlstate("MBI01"):
        api_conn.execute("SELECT * FROM perform_idempotently(%s, 'new', 'book_slot_expecting', %s)",
                         (world.patient_user, Jsonb({**arguments, "patient_id": world.other_patient})))


# Rescheduling ---------------------------------------------------------------------------------

def reschedule(client, world, appointment_id, slot_id):
    response = client.post(f"/v1/appointments/{appointment_id}/reschedule", json={"slot_id": slot_id},
                           headers=bearer(world.patient_user))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def link(url, appointment_id):
    return [{"url": url, "valueReference": {"reference": f"Appointment/{appointment_id}"}}]


def test_a_rescheduled_appointment_and_its_successor_link_to_each_other(client, world, slots):
    old = book(client, world, slots[0]["id"]).get_json(force=True)
    assert "extension" not in old
    new_id = reschedule(client, world, old["id"], slots[1]["id"])["id"]
    moved = fhir_get(client, f"Appointment/{old['id']}", world.patient_user).get_json(force=True)
    assert moved["status"] == "cancelled" and moved["cancelationReason"] == {"text": "rescheduled"}
    assert moved["extension"] == link(resources.RESCHEDULED_TO, new_id)
    successor = fhir_get(client, f"Appointment/{new_id}", world.practitioner_user).get_json(force=True)
    assert successor["status"] == "booked"
    assert successor["extension"] == link(resources.REPLACES, old["id"])
    assert resources.REPLACES == "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.replaces"
    found = fhir_get(client, "Appointment", world.patient_user, patient=f"Patient/{world.patient}")
    assert entries(found) == [moved, successor]
    # Moved again: the middle one links both ways.
    third_id = reschedule(client, world, new_id, slots[2]["id"])["id"]
    middle = fhir_get(client, f"Appointment/{new_id}", world.patient_user).get_json(force=True)
    assert middle["extension"] == link(resources.REPLACES, old["id"]) + link(resources.RESCHEDULED_TO, third_id)


def test_a_put_sends_the_links_back_as_read(client, admin, world, slots):
    old = book(client, world, slots[0]["id"]).get_json(force=True)
    new_id = reschedule(client, world, old["id"], slots[1]["id"])["id"]
    successor = fhir_get(client, f"Appointment/{new_id}", world.patient_user).get_json(force=True)
    without = {k: v for k, v in successor.items() if k != "extension"}
    for wrong in ({**without, "status": "cancelled"},
                  {**successor, "status": "cancelled", "extension": link(resources.REPLACES, new_id)},
                  {**successor, "status": "cancelled",
                   "extension": successor["extension"] + link(resources.RESCHEDULED_TO, old["id"])}):
        outcome(put(client, world.patient_user, wrong), 422, "business-rule", "appointment_mismatch")
    assert row(admin, new_id)["status"] == "booked"
    for unkept in ([{"url": "http://example.org/colour", "valueString": "blue"}],
                   [{"url": resources.REPLACES, "valueString": "Appointment/1"}],
                   link(resources.REPLACES, old["id"]) * 2):
        outcome(put(client, world.patient_user, {**successor, "status": "cancelled", "extension": unkept}), 422,
                "business-rule", "appointment_mismatch")
    outcome(put(client, world.patient_user, {**successor, "status": "cancelled",
                                              "extension": [{"url": resources.REPLACES,
                                                             "valueReference": {"reference": "Slot/1"}}]}),
            400, "invalid")
    cancelled = put(client, world.patient_user, {**successor, "status": "cancelled"})
    assert cancelled.status_code == 200
    assert cancelled.get_json(force=True)["extension"] == successor["extension"]
    # The predecessor, as read, is the unchanged no-op.
    moved = fhir_get(client, f"Appointment/{old['id']}", world.patient_user).get_json(force=True)
    assert put(client, world.patient_user, moved).get_json(force=True) == moved


def test_a_create_replaces_nothing(client, admin, world, slots):
    old = book(client, world, slots[0]["id"]).get_json(force=True)
    outcome(book(client, world, slots[1]["id"], extension=link(resources.REPLACES, old["id"])), 422,
            "business-rule", "appointment_mismatch")
    assert count(admin) == 1


# Events ---------------------------------------------------------------------------------------

def test_fhir_create_and_cancel_append_the_rest_events(client, admin, world, slots):
    rest = bearer(world.patient_user)
    start = last_event_id(admin)
    first = book(client, world, slots[0]["id"]).get_json(force=True)
    first_booked = client.get(f"/v1/appointments/{first['id']}", headers=rest).get_json()
    second = post(client, world, slots[1]["id"], "evt").get_json(force=True)
    second_booked = client.get(f"/v1/appointments/{second['id']}", headers=rest).get_json()
    assert post(client, world, slots[1]["id"], "evt").headers["Idempotent-Replayed"] == "true"  # no event
    assert patch(client, world.patient_user, first["id"]).status_code == 200
    first_cancelled = client.get(f"/v1/appointments/{first['id']}", headers=rest).get_json()
    assert put(client, world.practitioner_user, {**second, "status": "cancelled",
                                                 "cancelationReason": {"text": "clinic closed"}}).status_code == 200
    second_cancelled = client.get(f"/v1/appointments/{second['id']}", headers=rest).get_json()
    logged = [(e["type"], e["appointment_id"], e["payload"]) for e in events(admin, start)
              if e["type"].startswith("appointment.")]
    assert logged == [("appointment.booked", first_booked["id"], first_booked),
                      ("appointment.booked", second_booked["id"], second_booked),
                      ("appointment.cancelled", first_cancelled["id"], first_cancelled),
                      ("appointment.cancelled", second_cancelled["id"], second_cancelled)]
    assert second_cancelled["cancellation_reason"] == "clinic closed"
    # A refused FHIR change appends nothing.
    set_clock(admin, slots[2]["start_time"] - timedelta(hours=1))
    third = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slots[3]["id"])).fetchone()
    end = last_event_id(admin)
    outcome(patch(client, world.patient_user, third["id"], **{"If-Match": 'W/"5"'}), 412, "conflict")
    outcome(patch(client, world.patient_user, third["id"]), 422, "business-rule", "cancellation_window_closed")
    assert events(admin, end) == []
