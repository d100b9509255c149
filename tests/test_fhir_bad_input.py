"""Hostile and broken input to the FHIR facade, table-driven.

Each case is sent by a caller who would otherwise be allowed to make the
request, and must get its 4xx as an OperationOutcome with the expected issue
code: never a 500, never SQL or a stack trace, and the database exactly as
before (row counts and a digest of every booking table, as in test_bad_input).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from conftest import NOW, bearer, make_slot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bad_input import INJECTIONS, LEAKS, Scene, snapshot

BASE = "/fhir/R4"
FHIR = "application/fhir+json"
PATCH = "application/json-patch+json"


@pytest.fixture
def scene(admin, world) -> Scene:
    """An available slot, and the patient's appointment on another, as in test_bad_input."""
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    booked = make_slot(admin, world, NOW + timedelta(days=3))
    appointment = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, booked["id"])).fetchone()
    return Scene(world, slot["id"], booked["id"], appointment["id"])


def check(response, status: int, issue: str, label: str, failures: list[str]) -> None:
    text = response.get_data(as_text=True)
    problems = []
    if response.status_code != status:
        problems.append(f"status {response.status_code}, expected {status}")
    if response.mimetype != FHIR:
        problems.append(f"type {response.mimetype}")
    else:
        body = json.loads(text)
        if body.get("resourceType") != "OperationOutcome":
            problems.append("not an OperationOutcome")
        elif body["issue"][0]["code"] != issue:
            problems.append(f"issue {body['issue'][0]['code']}, expected {issue}")
    leaked = [word for word in LEAKS if word in text]
    if leaked:
        problems.append(f"leaks {leaked}")
    if problems:
        failures.append(f"{label}: {'; '.join(problems)}: {text[:300]}")


def send(client, method: str, path: str, user: int, body: Any = None, *, raw: bytes | None = None,
         content_type: str | None = FHIR):
    headers = bearer(user)
    if content_type is not None:
        headers["Content-Type"] = content_type
    data = raw if raw is not None else json.dumps(body)
    return client.open(f"{BASE}/{path}", method=method, headers=headers, data=data)


def valid_appointment(scene: Scene, slot: int, **changes) -> dict:
    w = scene.world
    body = {"resourceType": "Appointment", "status": "booked", "slot": [{"reference": f"Slot/{slot}"}],
            "participant": [{"actor": {"reference": f"Patient/{w.patient}"}, "status": "accepted"}]}
    return {**body, **changes}


def broken_bodies(valid: dict) -> list[tuple[str, dict, int, str]]:
    """(label, how to send, status, issue) for everything wrong with a resource body."""
    text = json.dumps(valid)
    return [
        ("malformed JSON", {"raw": text[:-1].encode()}, 400, "structure"),
        ("trailing garbage", {"raw": (text + "x").encode()}, 400, "structure"),
        ("JSON array", {"raw": b"[]"}, 400, "structure"),
        ("JSON string", {"raw": b'"Appointment"'}, 400, "structure"),
        ("JSON null", {"raw": b"null"}, 400, "structure"),
        ("empty body", {"raw": b""}, 400, "structure"),
        ("invalid UTF-8", {"raw": b'{"resourceType": "\xff\xfe"}'}, 400, "structure"),
        ("deep nesting", {"raw": b"[" * 100_000 + b"]" * 100_000}, 413, "too-long"),
        ("deep nesting under the limit", {"raw": b'{"a":' * 9_000 + b"1" + b"}" * 9_000}, 400, "structure"),
        ("1 MB body", {"body": {**valid, "text": {"div": "x" * (1 << 20)}}}, 413, "too-long"),
        ("text/plain", {"body": valid, "content_type": "text/plain"}, 415, "not-supported"),
        ("XML", {"raw": b"<Appointment/>", "content_type": "application/fhir+xml"}, 415, "not-supported"),
        ("no content type", {"body": valid, "content_type": None}, 415, "not-supported"),
        ("wrong resourceType", {"body": {**valid, "resourceType": "Slot"}}, 400, "invalid"),
        ("no resourceType", {"body": {k: v for k, v in valid.items() if k != "resourceType"}}, 400, "invalid"),
        ("resourceType not a string", {"body": {**valid, "resourceType": ["Appointment"]}}, 400, "invalid"),
        ("not an Appointment element", {"body": {**valid, "colour": "blue"}}, 400, "structure"),
        ("NUL in a key", {"body": {**valid, "a\x00": 1}}, 400, "structure"),
        ("an element not kept", {"body": {**valid, "comment": "call me"}}, 422, "business-rule"),
        ("a modifier extension", {"body": {**valid, "modifierExtension": [{"url": "x"}]}}, 422, "business-rule"),
        ("a primitive's extension", {"body": {**valid, "_status": {"id": "x"}}}, 422, "business-rule"),
        ("two slots", {"body": {**valid, "slot": valid["slot"] * 2}}, 422, "business-rule"),
        ("slot not a list", {"body": {**valid, "slot": valid["slot"][0]}}, 400, "invalid"),
        ("slot refers to a Practitioner", {"body": {**valid, "slot": [{"reference": "Practitioner/1"}]}},
         400, "invalid"),
        ("slot by identifier", {"body": {**valid, "slot": [{"identifier": {"value": "1"}}]}}, 422, "business-rule"),
        ("slot id not a number", {"body": {**valid, "slot": [{"reference": "Slot/abc"}]}}, 400, "invalid"),
        ("slot id zero", {"body": {**valid, "slot": [{"reference": "Slot/0"}]}}, 400, "invalid"),
        ("slot id past bigint", {"body": {**valid, "slot": [{"reference": "Slot/9223372036854775808"}]}},
         400, "invalid"),
        ("slot on another server", {"body": {**valid, "slot": [{"reference": "https://evil.example/Slot/1"}]}},
         422, "business-rule"),
        *[(f"injection {i}", {"body": {**valid, "slot": [{"reference": f"Slot/{inj}"}]}}, 400, "invalid")
          for i, inj in enumerate(INJECTIONS)],
        ("no status", {"body": {k: v for k, v in valid.items() if k != "status"}}, 400, "code-invalid"),
        ("unknown status", {"body": {**valid, "status": "open"}}, 400, "code-invalid"),
        ("status a number", {"body": {**valid, "status": 1}}, 400, "code-invalid"),
        ("status a list", {"body": {**valid, "status": ["booked"]}}, 400, "code-invalid"),
        ("status an object", {"body": {**valid, "status": {"code": "booked"}}}, 400, "code-invalid"),
        ("start not an instant", {"body": {**valid, "start": "tomorrow"}}, 400, "invalid"),
        ("start without an offset", {"body": {**valid, "start": "2027-03-04T12:00:00"}}, 400, "invalid"),
        ("start at 24:00", {"body": {**valid, "start": "2027-03-04T24:00:00Z"}}, 400, "invalid"),
        ("start a date", {"body": {**valid, "start": "2027-03-04"}}, 400, "invalid"),
        ("end a number", {"body": {**valid, "end": 1772528400}}, 400, "invalid"),
        ("participant not a list", {"body": {**valid, "participant": {}}}, 400, "invalid"),
        ("participant without status", {"body": {**valid, "participant": [
            {"actor": valid["participant"][0]["actor"]}]}}, 400, "code-invalid"),
        ("participant status a list", {"body": {**valid, "participant": [
            {**valid["participant"][0], "status": ["accepted"]}]}}, 400, "code-invalid"),
        ("participant a string", {"body": {**valid, "participant": ["Patient/1"]}}, 400, "invalid"),
        ("actor reference a number", {"body": {**valid, "participant": [
            {"actor": {"reference": 1}, "status": "accepted"}]}}, 400, "invalid"),
        ("slot reference missing", {"body": {**valid, "slot": [{"display": "x"}]}}, 400, "invalid"),
        ("reason a list", {"body": {**valid, "cancelationReason": ["x"]}}, 422, "business-rule"),
        ("participant without actor", {"body": {**valid, "participant": [
            {"status": "accepted", "type": [{"text": "x"}]}]}}, 422, "business-rule"),
        ("participant at a Location", {"body": {**valid, "participant": [
            *valid["participant"], {"actor": {"reference": "Location/1"}, "status": "accepted"}]}},
         422, "business-rule"),
        ("participant a Slot", {"body": {**valid, "participant": [
            *valid["participant"], {"actor": {"reference": "Slot/1"}, "status": "accepted"}]}}, 400, "invalid"),
        ("two patients", {"body": {**valid, "participant": valid["participant"] * 2}}, 422, "business-rule"),
        ("reason not text", {"body": {**valid, "cancelationReason": {"text": 5}}}, 400, "invalid"),
        ("reason with NUL", {"body": {**valid, "cancelationReason": {"text": "a\x00"}}}, 400, "invalid"),
        ("reason too long", {"body": {**valid, "cancelationReason": {"text": "x" * 1001}}}, 400, "invalid"),
        ("reason coded", {"body": {**valid, "cancelationReason": {"coding": [{"code": "pat"}]}}},
         422, "business-rule"),
    ]


def test_broken_appointment_bodies(client, admin, scene):
    before = snapshot(admin)
    failures: list[str] = []
    w = scene.world
    endpoints = [("POST", "Appointment", valid_appointment(scene, scene.slot))]
    stored = client.get(f"{BASE}/Appointment/{scene.appointment}", headers=bearer(w.patient_user)).get_json(force=True)
    endpoints.append(("PUT", f"Appointment/{scene.appointment}", {**stored, "status": "cancelled"}))
    for method, path, valid in endpoints:
        for label, spec, status, issue in broken_bodies(valid):
            if method == "PUT" and label == "two slots":
                status, issue = 422, "business-rule"
            response = send(client, method, path, w.patient_user, spec.get("body"), raw=spec.get("raw"),
                            content_type=spec.get("content_type", FHIR))
            check(response, status, issue, f"{method} {path} {label}", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


PATCHES: list[tuple[str, Any, int, str]] = [
    ("not a list", {"op": "replace", "path": "/status", "value": "cancelled"}, 400, "structure"),
    ("a list of strings", ["replace"], 400, "structure"),
    ("no op", [{"path": "/status", "value": "cancelled"}], 400, "structure"),
    ("no value", [{"op": "replace", "path": "/status"}], 400, "structure"),
    ("remove", [{"op": "remove", "path": "/status", "value": None}], 422, "business-rule"),
    ("another path", [{"op": "replace", "path": "/start", "value": "2027-03-05T10:00:00Z"}], 422, "business-rule"),
    ("back to booked", [{"op": "replace", "path": "/status", "value": "booked"}], 422, "business-rule"),
    ("status a number", [{"op": "replace", "path": "/status", "value": 1}], 422, "business-rule"),
    ("status a list", [{"op": "replace", "path": "/status", "value": ["cancelled"]}], 422, "business-rule"),
    ("op a list", [{"op": ["replace"], "path": "/status", "value": "cancelled"}], 400, "structure"),
    ("reason an object", [{"op": "replace", "path": "/status", "value": "cancelled"},
                          {"op": "add", "path": "/cancelationReason", "value": {"text": {}}}], 400, "invalid"),
    ("reason only", [{"op": "add", "path": "/cancelationReason/text", "value": "x"}], 422, "business-rule"),
    ("reason too long", [{"op": "replace", "path": "/status", "value": "cancelled"},
                         {"op": "add", "path": "/cancelationReason/text", "value": "x" * 1001}], 400, "invalid"),
    ("empty patch", [], 422, "business-rule"),
]


def test_broken_patches(client, admin, scene):
    before = snapshot(admin)
    failures: list[str] = []
    path = f"Appointment/{scene.appointment}"
    for label, body, status, issue in PATCHES:
        check(send(client, "PATCH", path, scene.world.patient_user, body, content_type=PATCH), status, issue,
              f"PATCH {label}", failures)
    valid = [{"op": "replace", "path": "/status", "value": "cancelled"}]
    for content_type in (FHIR, "application/json", "application/merge-patch+json", None):
        check(send(client, "PATCH", path, scene.world.patient_user, valid, content_type=content_type), 415,
              "not-supported", f"PATCH as {content_type}", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


def query_cases(scene: Scene) -> list[tuple[str, list[tuple[str, str]], int, str]]:
    w = scene.world
    schedule = ("schedule", f"Schedule/{w.practitioner}")
    patient = ("patient", f"Patient/{w.patient}")
    cases = [
        ("Slot", [schedule, ("colour", "blue")], 400, "not-supported"),
        ("Slot", [schedule, ("status:not", "free")], 400, "not-supported"),
        ("Slot", [schedule, ("_format", "json")], 400, "not-supported"),
        ("Slot", [schedule, ("_sort", "start")], 400, "not-supported"),
        ("Slot", [schedule, ("_include", "Slot:schedule")], 400, "not-supported"),
        ("Slot", [("status", "free")], 400, "required"),
        ("Slot", [("schedule", f"Practitioner/{w.practitioner}")], 400, "invalid"),
        ("Slot", [("schedule", "abc")], 400, "invalid"),
        ("Slot", [("schedule", "Schedule/0")], 400, "invalid"),
        ("Slot", [schedule, schedule], 400, "invalid"),
        ("Slot", [schedule, ("status", "free,open")], 400, "code-invalid"),
        ("Slot", [schedule, ("status", "http://example.org/status|free")], 400, "invalid"),
        ("Slot", [schedule, ("status", "")], 400, "code-invalid"),
        ("Slot", [schedule, ("start", "2027-03-04")], 400, "invalid"),            # no prefix
        ("Slot", [schedule, ("start", "eq2027-03-04")], 400, "invalid"),
        ("Slot", [schedule, ("start", "sa2027-03-04")], 400, "invalid"),
        ("Slot", [schedule, ("start", "xx2027-03-04")], 400, "invalid"),
        ("Slot", [schedule, ("start", "ge")], 400, "invalid"),
        ("Slot", [schedule, ("start", "gee2027-03-04")], 400, "invalid"),
        ("Slot", [schedule, ("start", "GE2027-03-04")], 400, "invalid"),
        ("Slot", [schedule, ("start", "ge2027-13-01")], 400, "invalid"),
        ("Slot", [schedule, ("start", "ge2027-02-30")], 400, "invalid"),
        ("Slot", [schedule, ("start", "getomorrow")], 400, "invalid"),
        ("Slot", [schedule, ("start", "ge2027-03-04T10:00")], 400, "invalid"),
        ("Slot", [schedule, ("start", "ge2027-03-04T10:00:00")], 400, "invalid"),
        ("Slot", [schedule, ("start", "ge2027-03-04T10:00:00+24:00")], 400, "invalid"),
        ("Slot", [schedule, ("start", "ge2027-03-04T10:00:00.1234567Z")], 400, "invalid"),
        ("Slot", [schedule, ("start", "le9999-12-31")], 400, "invalid"),
        ("Slot", [schedule, ("start", "ge2027-03-04"), ("start", "gt2027-03-05")], 400, "invalid"),
        ("Slot", [schedule, ("start", "lt2027-03-04"), ("start", "le2027-03-05")], 400, "invalid"),
        ("Slot", [schedule, ("start", "ge2027-03-04\x00")], 400, "invalid"),
        ("Slot", [schedule, ("_count", "0")], 400, "invalid"),
        ("Slot", [schedule, ("_count", "501")], 400, "invalid"),
        ("Slot", [schedule, ("_count", "-1")], 400, "invalid"),
        ("Slot", [schedule, ("_count", "1e3")], 400, "invalid"),
        ("Slot", [schedule, ("_count", "99999999999")], 400, "invalid"),
        ("Slot", [schedule, ("_count", "２")], 400, "invalid"),  # noqa: RUF001 (a fullwidth digit)
        ("Slot", [schedule, ("_count", "2"), ("_count", "3")], 400, "invalid"),
        ("Slot", [schedule, ("_cursor", "garbage")], 400, "invalid"),
        ("Slot", [schedule, ("_cursor", "eyJ4Ijo.AAAA")], 400, "invalid"),
        ("Slot", [schedule, ("_cursor", "x" * 600)], 400, "invalid"),
        ("Schedule", [], 400, "required"),
        ("Schedule", [("actor", "Schedule/1")], 400, "invalid"),
        ("Schedule", [("actor", "Practitioner/1"), ("name", "x")], 400, "not-supported"),
        ("Schedule", [("actor", "Practitioner/1"), ("_cursor", "x")], 400, "not-supported"),
        ("Appointment", [], 400, "invalid"),
        ("Appointment", [("patient", "Patient/x")], 400, "invalid"),
        ("Appointment", [("patient", "Practitioner/1")], 400, "invalid"),
        ("Appointment", [patient, ("date", "2027-03-04")], 400, "invalid"),
        ("Appointment", [patient, ("date", "ne2027-03-04")], 400, "invalid"),
        ("Appointment", [patient, ("date", "ge2027-03-04"), ("date", "ge2027-03-05")], 400, "invalid"),
        ("Appointment", [patient, ("status", "done")], 400, "code-invalid"),
        ("Appointment", [patient, ("actor", "Patient/1")], 400, "not-supported"),
        ("Appointment", [patient, ("slot", "Slot/1")], 400, "not-supported"),
    ]
    cases += [("Slot", [schedule, ("start", f"ge{inj}")], 400, "invalid") for inj in INJECTIONS]
    cases += [("Slot", [("schedule", inj)], 400, "invalid") for inj in INJECTIONS]
    return cases


def test_bad_searches(client, admin, scene):
    before = snapshot(admin)
    failures: list[str] = []
    user = {"Slot": scene.world.practitioner_user, "Schedule": scene.world.patient_user,
            "Appointment": scene.world.patient_user}
    for resource, query, status, issue in query_cases(scene):
        response = client.get(f"{BASE}/{resource}", query_string=query, headers=bearer(user[resource]))
        check(response, status, issue, f"GET {resource}?{query}", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


@pytest.mark.parametrize("resource", ["Slot", "Appointment", "Schedule", "Patient", "Practitioner"])
def test_ids_that_are_not_ours_are_not_found(client, admin, scene, resource):
    before = snapshot(admin)
    failures: list[str] = []
    for rid in ["0", "-1", "abc", "1.5", "+1", "0x10", "%EF%BC%91", "9223372036854775808", "1%27%20OR%201=1",
                "9223372036854775807", "a" * 64]:
        check(client.get(f"{BASE}/{resource}/{rid}", headers=bearer(scene.world.patient_user)), 404,
              "not-found", f"GET {resource}/{rid}", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


def test_wrong_methods_and_routes(client, admin, scene):
    before = snapshot(admin)
    failures: list[str] = []
    user = scene.world.patient_user
    for method, path, status, issue in [
        ("DELETE", f"Appointment/{scene.appointment}", 405, "not-supported"),
        ("POST", f"Slot/{scene.slot}", 405, "not-supported"),
        ("PUT", "Slot", 405, "not-supported"),
        ("POST", "metadata", 405, "not-supported"),
        ("GET", "Observation", 404, "not-found"),
        ("GET", f"Appointment/{scene.appointment}/_history/1", 404, "not-found"),
        ("POST", "", 404, "not-found"),   # batch and transaction are not supported
        ("GET", "Appointment/_search", 404, "not-found"),
    ]:
        response = client.open(f"{BASE}/{path}", method=method, headers=bearer(user))
        check(response, status, issue, f"{method} {path}", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children,
                                                                                      max_size=3), max_leaves=8)
PLACES = ["status", "slot", "slot.0", "slot.0.reference", "participant", "participant.0", "participant.0.actor",
          "participant.0.actor.reference", "participant.0.status", "start", "end", "cancelationReason",
          "cancelationReason.text", "id", "meta", "resourceType"]


def _put(body: Any, place: str, value: Any) -> Any:
    """body with the value at a dotted place (list indexes as digits), where the place exists."""
    head, _, rest = place.partition(".")
    key: Any = int(head) if head.isdigit() else head
    if isinstance(body, list) and isinstance(key, int) and key < len(body):
        body[key] = _put(body[key], rest, value) if rest else value
    elif isinstance(body, dict) and isinstance(key, str):
        body[key] = _put(body.get(key), rest, value) if rest and key in body else value
    return body


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_appointment_body_is_a_server_error(client, scene, data):
    """Any JSON value anywhere in an Appointment (create, PUT, PATCH): a documented answer, never a 500."""
    method = data.draw(st.sampled_from(["POST", "PUT", "PATCH"]))
    if method == "PATCH":
        body: Any = [{"op": "replace", "path": "/status", "value": "cancelled"}]
        body = _put(body, data.draw(st.sampled_from(["0", "0.op", "0.path", "0.value"])), data.draw(JSON))
        path, content_type = f"Appointment/{scene.appointment}", PATCH
    else:
        body = {**valid_appointment(scene, scene.slot), "id": str(scene.appointment)}
        for place in data.draw(st.lists(st.sampled_from(PLACES), min_size=1, max_size=3)):
            body = _put(body, place, data.draw(JSON, label=place))
        path = "Appointment" if method == "POST" else f"Appointment/{scene.appointment}"
        content_type = FHIR
    response = send(client, method, path, scene.world.patient_user, body, content_type=content_type)
    assert response.status_code < 500, response.get_data(as_text=True)
    assert response.mimetype == FHIR


QUERY_NAMES = ["schedule", "status", "start", "patient", "practitioner", "date", "actor", "_count", "_cursor",
               "status:not", "_format"]
QUERY_VALUES = st.one_of(st.text(max_size=40), st.sampled_from([
    "ge2027-03-04", "lt2027-03-05T00:00:00Z", "gt2027-03-04T10:00:00.5+01:00", "Schedule/1", "Patient/1",
    "Practitioner/1", "free,busy", "booked,cancelled", "1", "0", "500", "le9999-12-31T23:59:59Z",
    "ge0001-01-01", "http://hl7.org/fhir/slotstatus|free"]))


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(resource=st.sampled_from(["Slot", "Appointment", "Schedule"]),
       query=st.lists(st.tuples(st.sampled_from(QUERY_NAMES), QUERY_VALUES), max_size=5))
def test_no_search_is_a_server_error(client, scene, resource, query):
    response = client.get(f"{BASE}/{resource}", query_string=query, headers=bearer(scene.world.practitioner_user))
    assert response.status_code < 500, response.get_data(as_text=True)
    assert response.mimetype == FHIR
