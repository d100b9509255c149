"""The HTTP contract: statuses, problem codes, shapes and headers of every endpoint."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest
from conftest import JWT_SECRET, NOW, assert_problem, bearer, iso, make_slot, set_clock

from api import auth as auth_module
from api import create_app

START = NOW + timedelta(days=3)
SLOT_FIELDS = {"id", "practitioner_id", "start_time", "end_time", "status"}
APPOINTMENT_FIELDS = {"id", "slot_id", "patient_id", "practitioner_id", "status", "start_time", "end_time",
                      "booked_at", "cancelled_at", "cancelled_by", "cancellation_reason", "rescheduled_from",
                      "rescheduled_to"}


def new_slot(client, world, start=START, minutes=30, user=None, practitioner=None):
    return client.post(f"/v1/practitioners/{practitioner or world.practitioner}/slots",
                       headers=bearer(user or world.practitioner_user),
                       json={"start_time": iso(start), "end_time": iso(start + timedelta(minutes=minutes))})


def book(client, user, slot_id):
    return client.post("/v1/appointments", headers=bearer(user), json={"slot_id": slot_id})


# Slots ----------------------------------------------------------------------

def test_create_slot(client, world):
    response = new_slot(client, world)
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == SLOT_FIELDS
    assert body["practitioner_id"] == world.practitioner and body["status"] == "available"
    assert body["start_time"] == "2027-03-04T12:00:00+00:00"
    assert response.headers["Location"] == f"/v1/slots/{body['id']}"
    assert client.get(response.headers["Location"], headers=bearer(world.patient_user)).get_json() == body


def test_create_slot_accepts_any_offset_and_z(client, world):
    response = client.post(f"/v1/practitioners/{world.practitioner}/slots", headers=bearer(world.practitioner_user),
                           json={"start_time": "2027-03-04T14:00:00+02:00", "end_time": "2027-03-04T12:30:00Z"})
    assert response.status_code == 201
    assert response.get_json()["start_time"] == "2027-03-04T12:00:00+00:00"


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"start_time": iso(START), "end_time": iso(START)}, 422, "invalid_time_range"),
    ({"start_time": iso(START), "end_time": iso(START - timedelta(hours=1))}, 422, "invalid_time_range"),
    ({"start_time": iso(NOW - timedelta(hours=1)), "end_time": iso(NOW)}, 422, "slot_in_past"),
    ({"start_time": "2027-03-04T12:00:00", "end_time": "2027-03-04T12:30:00"}, 400, "validation_error"),
    ({"start_time": "2027-02-30T12:00:00Z", "end_time": "2027-03-04T12:30:00Z"}, 400, "validation_error"),
    ({"start_time": "tomorrow", "end_time": "2027-03-04T12:30:00Z"}, 400, "validation_error"),
    ({"start_time": 1767225600, "end_time": "2027-03-04T12:30:00Z"}, 400, "validation_error"),
    ({"start_time": iso(START)}, 400, "validation_error"),
    ({"start_time": iso(START), "end_time": iso(START + timedelta(hours=1)), "room": 4}, 400, "validation_error"),
    ([iso(START), iso(START + timedelta(hours=1))], 400, "validation_error"),
])
def test_create_slot_rejects_bad_bodies(client, admin, world, body, status, code):
    response = client.post(f"/v1/practitioners/{world.practitioner}/slots",
                           headers=bearer(world.practitioner_user), json=body)
    assert_problem(response, status, code)
    assert admin.execute("SELECT count(*) AS n FROM availability_slots").fetchone()["n"] == 0


def test_create_slot_body_format_errors(client, admin, world):
    url = f"/v1/practitioners/{world.practitioner}/slots"
    headers = bearer(world.practitioner_user)
    for junk in ("{not json", "[" * 30000, b'{"start_time": "\\udc00"}', b"\xff\xfe{}", "", "null", "NaN"):
        assert_problem(client.post(url, headers=headers, data=junk, content_type="application/json"),
                       400, "validation_error")
    assert_problem(client.post(url, headers=headers, data="start_time=x", content_type="text/plain"),
                   415, "unsupported_media_type")
    assert_problem(client.post(url, headers=headers), 415, "unsupported_media_type")
    assert_problem(client.post(url, headers=headers, data="x" * (65 * 1024), content_type="application/json"),
                   413, "payload_too_large")
    assert admin.execute("SELECT count(*) AS n FROM availability_slots").fetchone()["n"] == 0


def test_create_slot_authorization(client, world):
    assert_problem(new_slot(client, world, user=world.other_practitioner_user), 403, "forbidden")
    assert_problem(new_slot(client, world, user=world.patient_user), 403, "forbidden")
    assert_problem(new_slot(client, world, practitioner=10**12), 404, "not_found")
    assert_problem(new_slot(client, world, practitioner="-1"), 400, "validation_error")
    assert_problem(new_slot(client, world, practitioner="abc"), 400, "validation_error")
    assert_problem(new_slot(client, world, practitioner=2**63), 400, "validation_error")


def test_overlapping_slot(client, world):
    assert new_slot(client, world, minutes=60).status_code == 201
    assert_problem(new_slot(client, world, START + timedelta(minutes=30)), 409, "slot_overlap")


def test_get_slot(client, world):
    slot = new_slot(client, world).get_json()
    for user in (world.patient_user, world.other_practitioner_user, world.stranger_user):
        response = client.get(f"/v1/slots/{slot['id']}", headers=bearer(user))
        assert response.status_code == 200 and response.get_json() == slot
    assert_problem(client.get("/v1/slots/999999", headers=bearer(world.patient_user)), 404, "not_found")
    assert_problem(client.get("/v1/slots/0", headers=bearer(world.patient_user)), 400, "validation_error")
    assert_problem(client.get("/v1/slots/1.5", headers=bearer(world.patient_user)), 400, "validation_error")


def test_update_slot(client, world):
    slot = new_slot(client, world).get_json()
    url = f"/v1/slots/{slot['id']}"
    response = client.patch(url, headers=bearer(world.practitioner_user),
                            json={"end_time": iso(START + timedelta(minutes=50))})
    assert response.status_code == 200
    assert response.get_json()["end_time"] == iso(START + timedelta(minutes=50))
    assert response.get_json()["start_time"] == slot["start_time"]
    assert_problem(client.patch(url, headers=bearer(world.practitioner_user), json={}), 400, "validation_error")
    assert_problem(client.patch(url, headers=bearer(world.practitioner_user), json={"status": "booked"}),
                   400, "validation_error")
    assert_problem(client.patch(url, headers=bearer(world.other_practitioner_user),
                                json={"start_time": iso(START + timedelta(hours=1))}), 403, "forbidden")
    assert_problem(client.patch(url, headers=bearer(world.practitioner_user),
                                json={"start_time": iso(NOW - timedelta(hours=1)),
                                      "end_time": iso(NOW - timedelta(minutes=30))}), 422, "slot_in_past")
    assert_problem(client.patch(url, headers=bearer(world.practitioner_user),
                                json={"end_time": iso(START)}), 422, "invalid_time_range")
    assert book(client, world.patient_user, slot["id"]).status_code == 201
    assert_problem(client.patch(url, headers=bearer(world.practitioner_user),
                                json={"start_time": iso(START + timedelta(hours=1)),
                                      "end_time": iso(START + timedelta(hours=2))}), 409, "slot_booked")


def test_delete_slot(client, world):
    slot = new_slot(client, world).get_json()
    url = f"/v1/slots/{slot['id']}"
    assert_problem(client.delete(url, headers=bearer(world.other_practitioner_user)), 403, "forbidden")
    assert_problem(client.delete(url, headers=bearer(world.patient_user)), 403, "forbidden")
    appointment = book(client, world.patient_user, slot["id"]).get_json()
    assert_problem(client.delete(url, headers=bearer(world.practitioner_user)), 409, "slot_booked")
    client.post(f"/v1/appointments/{appointment['id']}/cancel", headers=bearer(world.practitioner_user))
    response = client.delete(url, headers=bearer(world.practitioner_user))
    assert response.status_code == 204 and response.get_data() == b""
    assert_problem(client.get(url, headers=bearer(world.patient_user)), 404, "not_found")
    kept = client.get(f"/v1/appointments/{appointment['id']}", headers=bearer(world.patient_user)).get_json()
    assert kept["status"] == "cancelled" and kept["slot_id"] is None and kept["start_time"] == slot["start_time"]


def test_list_available_slots(client, admin, world):
    first = new_slot(client, world).get_json()
    second = new_slot(client, world, START + timedelta(hours=1)).get_json()
    booked = new_slot(client, world, START + timedelta(hours=2)).get_json()
    tomorrow = new_slot(client, world, START + timedelta(days=1)).get_json()
    book(client, world.patient_user, booked["id"])
    url = f"/v1/practitioners/{world.practitioner}/slots"
    headers = bearer(world.other_patient_user)

    response = client.get(f"{url}?date={START.date()}", headers=headers)
    assert response.status_code == 200
    assert response.get_json() == {"data": [first, second], "next_cursor": None}
    assert client.get(url, headers=headers).get_json() == {"data": [first, second, tomorrow], "next_cursor": None}
    # 2027-03-05 in Auckland (UTC+13) runs 2027-03-04T11:00Z-2027-03-05T11:00Z.
    assert client.get(f"{url}?date=2027-03-05&tz=Pacific/Auckland", headers=headers).get_json() == {
        "data": [first, second], "next_cursor": None}
    set_clock(admin, START + timedelta(minutes=1))
    assert client.get(f"{url}?date={START.date()}", headers=headers).get_json() == {"data": [second],
                                                                                    "next_cursor": None}


@pytest.mark.parametrize("query", [
    "date=2027-02-30", "date=03/04/2027", "date=", "tz=Mars/Base&date=2027-03-04", "tz=&date=2027-03-04",
    "page=2", "date=2027-03-04&date=2027-03-05",
])
def test_list_available_slots_rejects_bad_queries(client, world, query):
    response = client.get(f"/v1/practitioners/{world.practitioner}/slots?{query}", headers=bearer(world.patient_user))
    assert_problem(response, 400, "validation_error")


def test_list_available_slots_of_unknown_practitioner(client, world):
    assert_problem(client.get("/v1/practitioners/424242/slots", headers=bearer(world.patient_user)), 404, "not_found")


# Appointments ---------------------------------------------------------------

def test_book_and_read_appointment(client, world):
    slot = new_slot(client, world).get_json()
    response = book(client, world.patient_user, slot["id"])
    assert response.status_code == 201
    appointment = response.get_json()
    assert set(appointment) == APPOINTMENT_FIELDS
    assert appointment["status"] == "booked" and appointment["slot_id"] == slot["id"]
    assert appointment["patient_id"] == world.patient and appointment["practitioner_id"] == world.practitioner
    assert (appointment["start_time"], appointment["end_time"]) == (slot["start_time"], slot["end_time"])
    assert appointment["booked_at"] == iso(NOW)
    assert response.headers["Location"] == f"/v1/appointments/{appointment['id']}"
    for user in (world.patient_user, world.practitioner_user):
        assert client.get(response.headers["Location"], headers=bearer(user)).get_json() == appointment
    for user in (world.other_patient_user, world.other_practitioner_user, world.stranger_user):
        body = assert_problem(client.get(response.headers["Location"], headers=bearer(user)), 403, "forbidden")
        assert slot["start_time"] not in str(body)
    assert client.get(f"/v1/slots/{slot['id']}", headers=bearer(world.patient_user)).get_json()["status"] == "booked"


def test_booking_errors(client, admin, world):
    slot = new_slot(client, world).get_json()
    assert_problem(book(client, world.practitioner_user, slot["id"]), 403, "forbidden")
    assert_problem(book(client, world.patient_user, 10**12), 404, "not_found")
    for bad in ("1", 1.5, True, None, -1, 0, 2**63, [1], {"id": 1}):
        assert_problem(book(client, world.patient_user, bad), 400, "validation_error")
    assert_problem(client.post("/v1/appointments", headers=bearer(world.patient_user), json={}),
                   400, "validation_error")
    assert book(client, world.patient_user, slot["id"]).status_code == 201
    assert_problem(book(client, world.other_patient_user, slot["id"]), 409, "slot_unavailable")
    past = make_slot(admin, world, NOW + timedelta(minutes=10))
    set_clock(admin, NOW + timedelta(minutes=10))
    assert_problem(book(client, world.patient_user, past["id"]), 422, "slot_in_past")
    assert admin.execute("SELECT count(*) AS n FROM appointments").fetchone()["n"] == 1


def test_cancel_and_rebook(client, world):
    slot = new_slot(client, world).get_json()
    appointment = book(client, world.patient_user, slot["id"]).get_json()
    url = f"/v1/appointments/{appointment['id']}/cancel"
    assert_problem(client.post(url, headers=bearer(world.other_patient_user)), 403, "forbidden")
    assert_problem(client.post(url, headers=bearer(world.other_practitioner_user)), 403, "forbidden")
    assert_problem(client.post(url, headers=bearer(world.patient_user), json={"reason": 7}), 400, "validation_error")
    assert_problem(client.post(url, headers=bearer(world.patient_user), json={"why": "x"}), 400, "validation_error")
    assert_problem(client.post(url, headers=bearer(world.patient_user), json={"reason": "x" * 1001}),
                   400, "validation_error")
    assert_problem(client.post(url, headers=bearer(world.patient_user), data=b'{"reason": "\\ud800"}',
                               content_type="application/json"), 400, "validation_error")

    response = client.post(url, headers=bearer(world.patient_user), json={"reason": "Feeling better — merci"})
    assert response.status_code == 200
    cancelled = response.get_json()
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_by"] == world.patient_user
    assert cancelled["cancellation_reason"] == "Feeling better — merci" and cancelled["cancelled_at"] == iso(NOW)
    assert_problem(client.post(url, headers=bearer(world.patient_user)), 409, "appointment_not_active")
    assert_problem(client.post(url, headers=bearer(world.practitioner_user), json={}), 409, "appointment_not_active")

    rebooked = book(client, world.other_patient_user, slot["id"])
    assert rebooked.status_code == 201 and rebooked.get_json()["patient_id"] == world.other_patient


def test_cancellation_window_over_http(client, admin, world):
    slot = new_slot(client, world).get_json()
    appointment = book(client, world.patient_user, slot["id"]).get_json()
    url = f"/v1/appointments/{appointment['id']}/cancel"
    set_clock(admin, START - timedelta(hours=23))
    assert_problem(client.post(url, headers=bearer(world.patient_user)), 422, "cancellation_window_closed")
    response = client.post(url, headers=bearer(world.practitioner_user), json={"reason": "ill"})
    assert response.status_code == 200 and response.get_json()["cancelled_by"] == world.practitioner_user


def test_upcoming_appointments(client, world):
    later = book(client, world.patient_user, new_slot(client, world, START + timedelta(days=1)).get_json()["id"])
    sooner = book(client, world.patient_user, new_slot(client, world).get_json()["id"])
    book(client, world.other_patient_user, new_slot(client, world, START + timedelta(hours=1)).get_json()["id"])
    url = f"/v1/patients/{world.patient}/appointments"
    response = client.get(url, headers=bearer(world.patient_user))
    assert response.status_code == 200
    assert [a["id"] for a in response.get_json()["data"]] == [sooner.get_json()["id"], later.get_json()["id"]]
    for user in (world.other_patient_user, world.practitioner_user):
        body = assert_problem(client.get(url, headers=bearer(user)), 403, "forbidden")
        assert "data" not in body
    assert_problem(client.get("/v1/patients/987654/appointments", headers=bearer(world.patient_user)),
                   404, "not_found")


# Authentication, health and the rest -----------------------------------------

def test_authentication_is_required(client, world):
    slot = new_slot(client, world).get_json()
    appointment = book(client, world.patient_user, slot["id"]).get_json()
    later = {"start_time": iso(START + timedelta(days=1)), "end_time": iso(START + timedelta(days=1, hours=1))}
    requests = [  # each would succeed with the patient's or practitioner's token
        ("post", f"/v1/practitioners/{world.practitioner}/slots", later),
        ("get", f"/v1/practitioners/{world.practitioner}/slots", None),
        ("get", f"/v1/slots/{slot['id']}", None),
        ("patch", f"/v1/slots/{slot['id']}", later),
        ("delete", f"/v1/slots/{slot['id']}", None),
        ("post", "/v1/appointments", {"slot_id": slot["id"]}),
        ("get", f"/v1/appointments/{appointment['id']}", None),
        ("post", f"/v1/appointments/{appointment['id']}/cancel", {}),
        ("get", f"/v1/patients/{world.patient}/appointments", None),
    ]
    expired = jwt.encode({"sub": str(world.patient_user), "exp": 1}, JWT_SECRET, algorithm="HS256")
    forged = jwt.encode({"sub": str(world.patient_user), "exp": 4102444800}, "another-secret-of-sufficient-len",
                        algorithm="HS256")
    no_exp = jwt.encode({"sub": str(world.patient_user)}, JWT_SECRET, algorithm="HS256")
    numeric_sub = jwt.encode({"sub": world.patient_user, "exp": 4102444800}, JWT_SECRET, algorithm="HS256")
    headers_list = [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"},
                    {"Authorization": "Bearer not.a.jwt"}, {"Authorization": f"Bearer {expired}"},
                    {"Authorization": f"Bearer {forged}"}, {"Authorization": f"Bearer {no_exp}"},
                    {"Authorization": f"Bearer {numeric_sub}"}, bearer(10**12)]
    for method, url, body in requests:
        for headers in headers_list:
            response = getattr(client, method)(url, headers=headers, json=body)
            assert_problem(response, 401, "unauthorized")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get(f"/v1/appointments/{appointment['id']}", headers=bearer(world.patient_user)).status_code == 200
    assert client.get(f"/v1/slots/{slot['id']}", headers=bearer(world.patient_user)).get_json()["status"] == "booked"


def test_a_remembered_token_still_expires_and_belongs_to_its_secret(client, app, world, monkeypatch):
    """A verified token is remembered per worker (api/auth.py), but never past its exp, nor under another secret."""
    token = jwt.encode({"sub": str(world.patient_user), "exp": int(time.time()) + 60}, JWT_SECRET, algorithm="HS256")
    url = f"/v1/practitioners/{world.practitioner}/slots"
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(url, headers=headers).status_code == 200
    assert client.get(url, headers=headers).status_code == 200  # the remembered verification
    monkeypatch.setitem(app.config, "JWT_SECRET", "another-secret-of-sufficient-len-0123")
    assert_problem(client.get(url, headers=headers), 401, "unauthorized")
    monkeypatch.undo()
    assert client.get(url, headers=headers).status_code == 200
    later = time.time() + 61
    monkeypatch.setattr(auth_module.time, "time", lambda: later)
    assert_problem(client.get(url, headers=headers), 401, "unauthorized")


def test_healthz(client):
    response = client.get("/v1/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_healthz_and_calls_report_503_when_the_database_is_unreachable(world):
    app = create_app({"DATABASE_URL": "host=127.0.0.1 port=1 dbname=none user=none connect_timeout=1",
                      "JWT_SECRET": JWT_SECRET, "POOL_TIMEOUT": 1.0})
    try:
        client = app.test_client()
        response = client.get("/v1/healthz")
        assert_problem(response, 503, "service_unavailable")
        assert response.headers["Retry-After"]
        response = client.get("/v1/slots/1", headers=bearer(world.patient_user))
        assert_problem(response, 503, "service_unavailable")
        assert response.headers["Retry-After"]
    finally:
        app.extensions["medbook_db"].close()


def test_unknown_route_and_method(client, world):
    assert_problem(client.get("/v1/nothing-here", headers=bearer(world.patient_user)), 404, "not_found")
    response = client.put("/v1/appointments", headers=bearer(world.patient_user))
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


# A practitioner's own view -----------------------------------------------------

def test_practitioner_lists_upcoming_appointments(client, world):
    later = book(client, world.other_patient_user, new_slot(client, world, START + timedelta(days=1)).get_json()["id"])
    sooner = book(client, world.patient_user, new_slot(client, world).get_json()["id"])
    url = f"/v1/practitioners/{world.practitioner}/appointments"
    response = client.get(url, headers=bearer(world.practitioner_user))
    assert response.status_code == 200
    assert [a["id"] for a in response.get_json()["data"]] == [sooner.get_json()["id"], later.get_json()["id"]]
    for user in (world.other_practitioner_user, world.patient_user):
        body = assert_problem(client.get(url, headers=bearer(user)), 403, "forbidden")
        assert "data" not in body
    assert_problem(client.get(f"{url}?limit=101", headers=bearer(world.practitioner_user)), 400, "validation_error")
    assert_problem(client.get(f"{url}?sort=start", headers=bearer(world.practitioner_user)), 400, "validation_error")
    assert_problem(client.get("/v1/practitioners/999999/appointments", headers=bearer(world.practitioner_user)),
                   404, "not_found")


def test_booking_settings(client, world):
    url = f"/v1/practitioners/{world.practitioner}/settings"
    defaults = {"practitioner_id": world.practitioner, "time_zone": "UTC", "cancellation_notice_minutes": 1440}
    assert client.get(url, headers=bearer(world.patient_user)).get_json() == defaults

    response = client.patch(url, headers=bearer(world.practitioner_user),
                            json={"time_zone": "Europe/London", "cancellation_notice_minutes": 90})
    assert response.status_code == 200
    changed = {**defaults, "time_zone": "Europe/London", "cancellation_notice_minutes": 90}
    assert response.get_json() == changed
    assert client.get(url, headers=bearer(world.other_patient_user)).get_json() == changed
    response = client.patch(url, headers=bearer(world.practitioner_user), json={"cancellation_notice_minutes": 0})
    assert response.get_json() == {**changed, "cancellation_notice_minutes": 0}

    for body in ({}, {"time_zone": "Mars/Base"}, {"time_zone": None}, {"cancellation_notice_minutes": 43201},
                 {"cancellation_notice_minutes": -1}, {"cancellation_notice_minutes": True},
                 {"cancellation_notice_minutes": 10**30}, {"cancellation_notice_minutes": "60"}, {"tz": "UTC"}):
        assert_problem(client.patch(url, headers=bearer(world.practitioner_user), json=body), 400, "validation_error")
    assert_problem(client.patch(url, headers=bearer(world.other_practitioner_user), json={"time_zone": "UTC"}),
                   403, "forbidden")
    assert_problem(client.patch(url, headers=bearer(world.patient_user), json={"time_zone": "UTC"}), 403, "forbidden")
    unchanged = client.get(url, headers=bearer(world.patient_user)).get_json()
    assert unchanged == {**changed, "cancellation_notice_minutes": 0}
    assert_problem(client.get("/v1/practitioners/999999/settings", headers=bearer(world.patient_user)),
                   404, "not_found")


def test_settings_drive_the_date_filter_and_the_window(client, admin, world):
    url = f"/v1/practitioners/{world.practitioner}/settings"
    client.patch(url, headers=bearer(world.practitioner_user),
                 json={"time_zone": "Pacific/Auckland", "cancellation_notice_minutes": 60})
    slot = new_slot(client, world).get_json()  # 2027-03-04T12:00Z is 2027-03-05 01:00 in Auckland
    listed = client.get(f"/v1/practitioners/{world.practitioner}/slots?date=2027-03-05",
                        headers=bearer(world.patient_user)).get_json()["data"]
    assert [s["id"] for s in listed] == [slot["id"]]
    appointment = book(client, world.patient_user, slot["id"]).get_json()
    set_clock(admin, START - timedelta(minutes=61))
    response = client.post(f"/v1/appointments/{appointment['id']}/cancel", headers=bearer(world.patient_user))
    assert response.status_code == 200


def test_settings_refusal_speaks_of_settings_not_slots(client, world):
    response = client.patch(f"/v1/practitioners/{world.practitioner}/settings",
                            json={"time_zone": "Europe/London"}, headers=bearer(world.other_practitioner_user))
    body = assert_problem(response, 403, "forbidden")
    assert "slot" not in body["detail"]


def test_reference_links_the_documents_and_serves_them(client):
    described = client.get("/v1/openapi.json").get_json()["info"]["description"]
    assert "(/v1/docs/ERRORS.md)" in described and "(/v1/docs/DESIGN.md)" in described
    page = client.get("/v1/docs/ERRORS.md")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "<table>" in page.get_data(as_text=True) and "slot_unavailable" in page.get_data(as_text=True)
    assert client.get("/v1/docs/secrets.md").status_code == 404
    assert client.get("/v1/docs/..%2Fsetup.cfg").status_code == 404


def test_whole_numbers_written_with_a_fraction_are_integers(client, admin, world):
    """JSON Schema's integer includes 20.0; 20.5 is not one."""
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    headers = bearer(world.patient_user)
    assert_problem(client.post("/v1/appointments", json={"slot_id": slot["id"] + 0.5}, headers=headers),
                   400, "validation_error")
    booked = client.post("/v1/appointments", json={"slot_id": float(slot["id"])}, headers=headers)
    assert booked.status_code == 201 and booked.get_json()["slot_id"] == slot["id"]


@pytest.mark.parametrize("minutes", [9223372036854775807, -1, 43201])
def test_out_of_range_notice_says_the_range(client, world, minutes):
    response = client.patch(f"/v1/practitioners/{world.practitioner}/settings",
                            json={"cancellation_notice_minutes": minutes}, headers=bearer(world.practitioner_user))
    body = assert_problem(response, 400, "validation_error")
    assert "between 0 and 43200" in body["detail"]
