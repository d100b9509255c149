"""The FHIR R4 facade over HTTP: reads, searches, booking and cancelling, errors, the CapabilityStatement.

Every response here passes through the `client` fixture's checks: the OpenAPI
document (api/openapi.json with api/fhir/openapi.json) and, under /fhir/, the
fhir.resources R4B models (tests/fhir_contract.py).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import NOW, add_patient, bearer, invariant_violations, make_slot, set_clock
from fhir_contract import FhirContractViolationError, check_fhir_response

from api.fhir import metadata

BASE = "/fhir/R4"
FHIR = "application/fhir+json"
START = NOW + timedelta(days=3)


def fhir_get(client, path, user=None, **params):
    return client.get(f"{BASE}/{path}", query_string=params, headers=bearer(user) if user else {})


def outcome(response, status: int, issue: str, code: str | None = None) -> dict:
    """The response is an OperationOutcome with this status, issue code and (if given) REST problem code."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == FHIR
    body = response.get_json(force=True)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == issue, body
    if code:
        assert body["issue"][0]["details"]["coding"][0]["code"] == code, body
    return body


def appointment_body(world, slot_id, **changes):
    body = {"resourceType": "Appointment", "status": "booked", "slot": [{"reference": f"Slot/{slot_id}"}],
            "participant": [{"actor": {"reference": f"Patient/{world.patient}"}, "status": "accepted"}]}
    body.update(changes)
    return body


def book(client, world, slot_id, user=None, **changes):
    return client.post(f"{BASE}/Appointment", json=appointment_body(world, slot_id, **changes),
                       headers={**bearer(user or world.patient_user), "Content-Type": FHIR})


def entries(response):
    return [entry["resource"] for entry in response.get_json(force=True).get("entry", [])]


@pytest.fixture
def slots(admin, world):
    return [make_slot(admin, world, START + timedelta(hours=i)) for i in range(5)]


# metadata -----------------------------------------------------------------------

def test_capability_statement_needs_no_token_and_lists_exactly_what_is_served(app, client):
    response = client.get(f"{BASE}/metadata")
    assert response.status_code == 200 and response.mimetype == FHIR
    statement = response.get_json(force=True)
    listed = {(r["type"], i["code"]) for r in statement["rest"][0]["resource"] for i in r["interaction"]}
    served = set()
    for rule in app.url_map.iter_rules():
        match = re.fullmatch(rf"{BASE}/([A-Z][A-Za-z]+)(/<[^>]+>)?", rule.rule)
        if not match:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((match[1], {("GET", False): "search-type", ("GET", True): "read", ("POST", False): "create",
                                   ("PUT", True): "update", ("PATCH", True): "patch"}[method, bool(match[2])]))
    assert listed == served
    assert statement["fhirVersion"] == "4.0.1" and FHIR in statement["format"]
    params = {(r["type"], p["name"]) for r in statement["rest"][0]["resource"] for p in r.get("searchParam", [])}
    assert params == {("Schedule", "actor"), ("Slot", "schedule"), ("Slot", "status"), ("Slot", "start"),
                      ("Appointment", "patient"), ("Appointment", "practitioner"), ("Appointment", "date"),
                      ("Appointment", "status")}
    assert set(metadata.INTERACTIONS) == {r["type"] for r in statement["rest"][0]["resource"]}


# Schedule and Slot ----------------------------------------------------------------

def test_schedule_is_the_practitioner(client, world):
    schedule = fhir_get(client, f"Schedule/{world.practitioner}", world.patient_user).get_json(force=True)
    assert schedule["id"] == str(world.practitioner)
    assert schedule["actor"] == [{"reference": f"Practitioner/{world.practitioner}"}]
    found = fhir_get(client, "Schedule", world.patient_user, actor=f"Practitioner/{world.practitioner}")
    assert entries(found) == [schedule] and found.get_json(force=True)["total"] == 1
    none = fhir_get(client, "Schedule", world.patient_user, actor="Practitioner/999999999").get_json(force=True)
    assert none["total"] == 0 and "entry" not in none
    outcome(fhir_get(client, "Schedule/999999999", world.patient_user), 404, "not-found", "not_found")
    outcome(fhir_get(client, "Schedule", world.patient_user), 400, "required")


def test_slot_read_and_status_mapping(client, admin, world, slots):
    response = fhir_get(client, f"Slot/{slots[0]['id']}", world.patient_user)
    assert response.get_json(force=True) == {
        "resourceType": "Slot", "id": str(slots[0]["id"]), "meta": {"versionId": "1"},
        "schedule": {"reference": f"Schedule/{world.practitioner}"}, "status": "free",
        "start": "2027-03-04T12:00:00Z", "end": "2027-03-04T12:30:00Z"}
    assert response.headers["ETag"] == 'W/"1"'
    assert book(client, world, slots[0]["id"]).status_code == 201
    busy = fhir_get(client, f"Slot/{slots[0]['id']}", world.stranger_user)
    assert busy.get_json(force=True)["status"] == "busy"
    # The booking changed the slot: a new version, as its REST ETag says.
    assert busy.get_json(force=True)["meta"] == {"versionId": "2"} and busy.headers["ETag"] == 'W/"2"'
    assert client.get(f"/v1/slots/{slots[0]['id']}", headers=bearer(world.stranger_user)).headers["ETag"] == '"2"'


def test_slot_search_filters_pages_and_totals(client, admin, world, slots):
    book(client, world, slots[1]["id"])
    schedule = f"Schedule/{world.practitioner}"
    found = fhir_get(client, "Slot", world.patient_user, schedule=schedule)
    assert [s["id"] for s in entries(found)] == [str(s["id"]) for s in (slots[0], *slots[2:])]
    mine = fhir_get(client, "Slot", world.practitioner_user, schedule=schedule, status="busy")
    assert [s["id"] for s in entries(mine)] == [str(slots[1]["id"])]
    outcome(fhir_get(client, "Slot", world.patient_user, schedule=schedule, status="busy"), 403, "forbidden")

    ranged = client.get(f"{BASE}/Slot", headers=bearer(world.patient_user), query_string=[
        ("schedule", schedule), ("start", "ge2027-03-04T14:00:00Z"), ("start", "lt2027-03-04T16:00:00Z")])
    assert [s["start"] for s in entries(ranged)] == ["2027-03-04T14:00:00Z", "2027-03-04T15:00:00Z"]
    # gt an instant without a fraction excludes that whole second; le includes it.
    ranged = client.get(f"{BASE}/Slot", headers=bearer(world.patient_user), query_string=[
        ("schedule", schedule), ("start", "gt2027-03-04T14:00:00Z"), ("start", "le2027-03-04T16:00:00+00:00")])
    assert [s["start"] for s in entries(ranged)] == ["2027-03-04T15:00:00Z", "2027-03-04T16:00:00Z"]
    day = fhir_get(client, "Slot", world.patient_user, schedule=schedule, start="le2027-03-03")
    assert day.get_json(force=True)["total"] == 0

    page = fhir_get(client, "Slot", world.practitioner_user, schedule=schedule, _count=2)
    seen = []
    while True:
        bundle = page.get_json(force=True)
        assert bundle["total"] == 5
        seen += [s["id"] for s in entries(page)]
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            break
        url = urlsplit(following[0])
        assert url.scheme == "http" and url.path == f"{BASE}/Slot" and parse_qs(url.query)["_count"] == ["2"]
        page = client.get(f"{url.path}?{url.query}", headers=bearer(world.practitioner_user))
    assert seen == [str(s["id"]) for s in slots]


def test_a_cursor_belongs_to_its_search(client, world, slots):
    schedule = f"Schedule/{world.practitioner}"
    bundle = fhir_get(client, "Slot", world.patient_user, schedule=schedule, _count=1).get_json(force=True)
    cursor = parse_qs(urlsplit(bundle["link"][1]["url"]).query)["_cursor"][0]
    outcome(fhir_get(client, "Slot", world.patient_user, schedule=schedule, start="ge2027-03-01", _cursor=cursor),
            400, "invalid", "invalid_cursor")
    altered = cursor[:-2] + ("BB" if cursor.endswith("AA") else "AA")   # never the cursor itself
    outcome(fhir_get(client, "Slot", world.patient_user, schedule=schedule, _cursor=altered),
            400, "invalid", "invalid_cursor")
    # The same search said differently (status=free is what a patient sees anyway) is the same listing.
    assert entries(fhir_get(client, "Slot", world.patient_user, schedule=schedule, status="free", _cursor=cursor))
    assert entries(fhir_get(client, "Slot", world.patient_user, schedule=schedule, _cursor=cursor))


# Appointments -----------------------------------------------------------------------

def test_create_books_the_slot_through_book_slot(client, admin, world, slots):
    response = book(client, world, slots[0]["id"], start="2027-03-04T12:00:00Z",
                    participant=[{"actor": {"reference": f"Patient/{world.patient}"}, "status": "accepted"},
                                 {"actor": {"reference": f"Practitioner/{world.practitioner}"},
                                  "status": "needs-action"}])
    assert response.status_code == 201
    created = response.get_json(force=True)
    assert response.headers["Location"] == f"http://localhost{BASE}/Appointment/{created['id']}"
    assert created["status"] == "booked" and created["slot"] == [{"reference": f"Slot/{slots[0]['id']}"}]
    assert created["created"] == "2027-03-01T12:00:00Z"
    assert {p["actor"]["reference"] for p in created["participant"]} == {
        f"Patient/{world.patient}", f"Practitioner/{world.practitioner}"}
    rest = client.get(f"/v1/appointments/{created['id']}", headers=bearer(world.patient_user)).get_json()
    assert rest["slot_id"] == slots[0]["id"] and rest["status"] == "booked"
    outcome(book(client, world, slots[0]["id"]), 409, "conflict", "slot_unavailable")
    assert invariant_violations(admin) == []


@pytest.mark.parametrize("changes, status, issue, code", [
    ({"participant": [{"actor": {"reference": "Patient/{other_patient}"}, "status": "accepted"}]}, 403,
     "forbidden", "forbidden"),
    ({"start": "2027-03-04T12:05:00Z"}, 422, "business-rule", "appointment_mismatch"),
    ({"participant": [{"actor": {"reference": "Patient/{patient}"}, "status": "accepted"},
                      {"actor": {"reference": "Practitioner/{other_practitioner}"}, "status": "accepted"}]},
     422, "business-rule", "appointment_mismatch"),
    ({"status": "proposed"}, 422, "business-rule", "appointment_mismatch"),
    ({"comment": "please call"}, 422, "business-rule", "appointment_mismatch"),
    ({"slot": []}, 400, "required", "validation_error"),
    ({"participant": []}, 400, "required", "validation_error"),
])
def test_create_refuses_what_is_not_this_booking_and_books_nothing(client, admin, world, slots, changes, status,
                                                                   issue, code):
    ids = {name: getattr(world, name) for name in ("patient", "other_patient", "other_practitioner")}
    for participant in changes.get("participant", []):
        participant["actor"]["reference"] = participant["actor"]["reference"].format(**ids)
    outcome(book(client, world, slots[0]["id"], **changes), status, issue, code)
    assert admin.execute("SELECT count(*) AS n FROM appointments").fetchone()["n"] == 0
    assert book(client, world, slots[0]["id"]).status_code == 201


def test_create_refuses_a_started_slot_and_non_patients(client, admin, world, slots):
    outcome(book(client, world, slots[0]["id"], user=world.practitioner_user), 403, "forbidden")
    set_clock(admin, slots[0]["start_time"])
    outcome(book(client, world, slots[0]["id"]), 422, "business-rule", "slot_in_past")
    outcome(book(client, world, 999_999_999), 404, "not-found", "not_found")


def test_read_and_search_appointments_like_the_rest_lists(client, admin, world, slots):
    first = book(client, world, slots[0]["id"]).get_json(force=True)
    second = book(client, world, slots[2]["id"]).get_json(force=True)
    assert fhir_get(client, f"Appointment/{first['id']}", world.practitioner_user).get_json(force=True) == first
    outcome(fhir_get(client, f"Appointment/{first['id']}", world.other_patient_user), 403, "forbidden")
    outcome(fhir_get(client, "Appointment/999999999", world.patient_user), 404, "not-found")

    mine = fhir_get(client, "Appointment", world.patient_user, patient=f"Patient/{world.patient}")
    assert entries(mine) == [first, second] and mine.get_json(force=True)["total"] == 2
    theirs = fhir_get(client, "Appointment", world.practitioner_user, practitioner=str(world.practitioner),
                      date="ge2027-03-04T13:00:00Z")
    assert entries(theirs) == [second]
    outcome(fhir_get(client, "Appointment", world.other_patient_user, patient=f"Patient/{world.patient}"),
            403, "forbidden")
    outcome(fhir_get(client, "Appointment", world.patient_user), 400, "invalid", "validation_error")
    client.patch(f"{BASE}/Appointment/{first['id']}", headers={**bearer(world.patient_user),
                 "Content-Type": "application/json-patch+json"},
                 json=[{"op": "replace", "path": "/status", "value": "cancelled"}])
    cancelled = fhir_get(client, "Appointment", world.patient_user, patient=f"Patient/{world.patient}",
                         status="cancelled,noshow")
    assert [a["id"] for a in entries(cancelled)] == [first["id"]]
    booked = fhir_get(client, "Appointment", world.patient_user, patient=f"Patient/{world.patient}",
                      status="http://hl7.org/fhir/appointmentstatus|booked")
    assert [a["id"] for a in entries(booked)] == [second["id"]]
    assert fhir_get(client, "Appointment", world.patient_user, patient=f"Patient/{world.patient}",
                    status="fulfilled").get_json(force=True)["total"] == 0


def put(client, user, resource):
    return client.put(f"{BASE}/Appointment/{resource['id']}", json=resource,
                      headers={**bearer(user), "Content-Type": FHIR})


def test_put_with_status_cancelled_cancels_within_the_window(client, admin, world, slots):
    appointment = book(client, world, slots[0]["id"]).get_json(force=True)
    assert put(client, world.patient_user, appointment).get_json(force=True) == appointment  # unchanged
    late = slots[0]["start_time"] - timedelta(hours=2)
    set_clock(admin, late)
    outcome(put(client, world.patient_user, {**appointment, "status": "cancelled"}), 422, "business-rule",
            "cancellation_window_closed")
    response = put(client, world.practitioner_user,
                   {**appointment, "status": "cancelled", "cancelationReason": {"text": "clinic closed"}})
    assert response.status_code == 200
    cancelled = response.get_json(force=True)
    assert cancelled["status"] == "cancelled" and cancelled["cancelationReason"] == {"text": "clinic closed"}
    assert put(client, world.patient_user, cancelled).get_json(force=True) == cancelled  # again: unchanged
    assert fhir_get(client, f"Slot/{slots[0]['id']}", world.patient_user).get_json(force=True)["status"] == "free"
    rest = client.get(f"/v1/appointments/{appointment['id']}", headers=bearer(world.patient_user)).get_json()
    assert rest["cancelled_by"] == world.practitioner_user and rest["cancellation_reason"] == "clinic closed"


@pytest.mark.parametrize("change", [
    {"start": "2027-03-04T13:00:00Z"},
    {"end": "2027-03-04T13:00:00Z"},
    {"slot": [{"reference": "Slot/999999"}]},
    {"cancelationReason": {"text": "without cancelling"}},
    {"status": "noshow"},
    {"description": "a note"},
])
def test_any_other_change_in_a_put_is_a_business_rule_error(client, admin, world, slots, change):
    appointment = book(client, world, slots[0]["id"]).get_json(force=True)
    body = outcome(put(client, world.patient_user, {**appointment, **change}), 422, "business-rule")
    assert body["issue"][0]["details"]["coding"][0]["code"] == "appointment_mismatch"
    assert fhir_get(client, f"Appointment/{appointment['id']}", world.patient_user).get_json(force=True) \
        == appointment


def test_put_needs_the_id_and_cannot_create(client, world, slots):
    appointment = book(client, world, slots[0]["id"]).get_json(force=True)
    other_id = str(int(appointment["id"]) + 1)
    response = client.put(f"{BASE}/Appointment/{appointment['id']}", json={**appointment, "id": other_id},
                          headers={**bearer(world.patient_user), "Content-Type": FHIR})
    outcome(response, 400, "invalid")
    outcome(put(client, world.patient_user, {**appointment, "id": "999999999"}), 404, "not-found")


def test_patch_cancels_and_cancelling_twice_is_refused(client, world, slots):
    appointment = book(client, world, slots[0]["id"]).get_json(force=True)
    patch = [{"op": "replace", "path": "/status", "value": "cancelled"},
             {"op": "add", "path": "/cancelationReason", "value": {"text": "feeling better"}}]
    headers = {**bearer(world.patient_user), "Content-Type": "application/json-patch+json"}
    response = client.patch(f"{BASE}/Appointment/{appointment['id']}", json=patch, headers=headers)
    assert response.status_code == 200
    assert response.get_json(force=True)["cancelationReason"] == {"text": "feeling better"}
    outcome(client.patch(f"{BASE}/Appointment/{appointment['id']}", json=patch, headers=headers), 409,
            "business-rule", "appointment_not_active")
    outcome(client.patch(f"{BASE}/Appointment/{appointment['id']}", json=patch,
                         headers={**bearer(world.patient_user), "Content-Type": FHIR}),
            415, "not-supported", "unsupported_media_type")


# Patient and Practitioner ------------------------------------------------------------

def test_patients_are_read_by_themselves_and_their_practitioners(client, world, slots):
    outcome(fhir_get(client, f"Patient/{world.patient}", world.practitioner_user), 403, "forbidden")
    book(client, world, slots[0]["id"])
    me = fhir_get(client, f"Patient/{world.patient}", world.patient_user).get_json(force=True)
    assert me["id"] == str(world.patient) and me["name"][0]["text"].startswith("User ")
    assert fhir_get(client, f"Patient/{world.patient}", world.practitioner_user).get_json(force=True) == me
    for user in (world.other_patient_user, world.other_practitioner_user, world.stranger_user):
        outcome(fhir_get(client, f"Patient/{world.patient}", user), 403, "forbidden")
    outcome(fhir_get(client, "Patient/999999999", world.patient_user), 404, "not-found")


def test_practitioners_are_read_by_anyone_signed_in(client, world):
    for user in (world.patient_user, world.stranger_user, world.other_practitioner_user):
        practitioner = fhir_get(client, f"Practitioner/{world.practitioner}", user).get_json(force=True)
        assert practitioner["id"] == str(world.practitioner)
        assert practitioner["qualification"] == [{"code": {"text": "Physiotherapy"}}]
    outcome(fhir_get(client, "Practitioner/999999999", world.patient_user), 404, "not-found")


# Errors ---------------------------------------------------------------------------------

def test_every_error_is_an_operation_outcome_with_the_rest_status(client, world):
    body = outcome(client.get(f"{BASE}/Slot/1"), 401, "login", "unauthorized")
    assert body["id"]
    response = client.get(f"{BASE}/Slot/1")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    outcome(fhir_get(client, "Observation", world.patient_user), 404, "not-found", "not_found")
    outcome(client.delete(f"{BASE}/Slot/1", headers=bearer(world.patient_user)), 405, "not-supported")
    outcome(fhir_get(client, "Slot/abc", world.patient_user), 404, "not-found")


def test_errors_at_the_base_are_outcomes_and_next_to_it_problems(client):
    """The base path and everything under it answer FHIR; a path that only begins like it does not."""
    client.check_contract = False
    outcome(client.get(BASE), 404, "not-found", "not_found")
    outcome(client.get(f"{BASE}/"), 404, "not-found", "not_found")
    beside = client.get(f"{BASE}x/Slot/1")
    assert beside.status_code == 404 and beside.mimetype == "application/problem+json"
    assert beside.get_json()["code"] == "not_found"


@pytest.mark.parametrize("change", [
    lambda slot: {**slot, "colour": "blue"},             # not an element of Slot
    lambda slot: {**slot, "status": "open"},             # outside the value set
    lambda slot: {k: v for k, v in slot.items() if k != "schedule"},   # a required element missing
    lambda slot: {**slot, "start": "tomorrow"},          # not an instant
    lambda slot: {**slot, "resourceType": "Slots"},
])
def test_the_checker_refuses_a_resource_that_is_not_r4b(client, world, slots, change):
    client.check_contract = False
    response = fhir_get(client, f"Slot/{slots[0]['id']}", world.patient_user)
    check_fhir_response(response)
    response.set_data(json.dumps(change(response.get_json(force=True))))
    with pytest.raises(FhirContractViolationError):
        check_fhir_response(response)


def test_a_new_patient_has_no_appointments(client, admin):
    user, patient = add_patient(admin)
    found = fhir_get(client, "Appointment", user, patient=f"Patient/{patient}").get_json(force=True)
    assert found["total"] == 0 and [link["relation"] for link in found["link"]] == ["self"]


def test_attendance_states_are_fulfilled_and_noshow(client, admin, world, slots):
    """Issue 10's completed and no_show read and search as FHIR's fulfilled and noshow; a PUT cannot set them."""
    came = book(client, world, slots[0]["id"]).get_json(force=True)
    missed = book(client, world, slots[1]["id"]).get_json(force=True)
    set_clock(admin, slots[1]["start_time"] + timedelta(minutes=5))
    admin.execute("SELECT complete_appointment(%s, %s)", (world.practitioner_user, int(came["id"])))
    admin.execute("SELECT mark_no_show(%s, %s)", (world.practitioner_user, int(missed["id"])))
    assert fhir_get(client, f"Appointment/{came['id']}", world.patient_user).get_json(force=True)["status"] \
        == "fulfilled"
    read = fhir_get(client, f"Appointment/{missed['id']}", world.patient_user).get_json(force=True)
    assert read["status"] == "noshow"
    for status, expected in (("fulfilled", [came["id"]]), ("noshow", [missed["id"]]),
                             ("fulfilled,noshow", [came["id"], missed["id"]]), ("booked", [])):
        found = fhir_get(client, "Appointment", world.patient_user, patient=f"Patient/{world.patient}",
                         status=status)
        assert [a["id"] for a in entries(found)] == expected, status
    assert put(client, world.patient_user, read).get_json(force=True) == read   # unchanged
    outcome(put(client, world.practitioner_user, {**read, "status": "fulfilled"}), 422, "business-rule",
            "appointment_mismatch")
