"""Who may see and do what: authentication failures, an access matrix, and no leaks.

* Every protected endpoint answers 401 (with WWW-Authenticate) to a missing,
  malformed, forged, unsigned, expired or otherwise unusable token, and to a
  valid token whose sub names no user.
* For every endpoint and resource, a different patient, a different
  practitioner and a user who is neither get 403 or 404, and the body carries
  none of the resource's data; the rightful caller, as a control, does see it.
* No response carries SQL or a stack trace, not even a 500, and the logs never
  carry a token.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import psycopg
import pytest
from conftest import JWT_SECRET, NOW, World, bearer, iso, make_slot
from psycopg.types.json import Jsonb

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "request_id", "hint"}
RULE = {"weekday": 1, "start": "09:00", "end": "12:00", "slot_minutes": 30}


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def token(claims: dict | None = None, *, secret: str = JWT_SECRET, algorithm: str = "HS256",
          **extra) -> str:
    now = datetime.now(UTC)
    body = {"sub": "1", "iat": now, "exp": now + timedelta(hours=1), **(claims or {})}
    body.update(extra)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm=algorithm)


def bad_tokens(user: int) -> dict[str, dict[str, str]]:
    """Authorization headers that must all be refused, by name."""
    sub = str(user)
    now = datetime.now(UTC)
    valid = token({"sub": sub})
    header, payload, signature = valid.split(".")
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}."
    bearer_only = {
        "garbage": "abc.def.ghi",
        "random": uuid.uuid4().hex,
        "wrong signature": token({"sub": sub}, secret="another-secret-that-is-long-enough-0123456789"),
        "tampered payload": f"{header}.{b64({'sub': '2', 'exp': 4102444800})}.{signature}",
        "alg none": unsigned,
        "alg none, signature kept": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.{signature}",
        "HS512 with the right secret": token({"sub": sub}, algorithm="HS512"),
        "expired": token({"sub": sub, "iat": now - timedelta(hours=2), "exp": now - timedelta(seconds=5)}),
        "not yet valid": token({"sub": sub}, nbf=now + timedelta(hours=1)),
        "no exp": token({"sub": sub, "exp": None}),
        "no sub": token({"sub": None}),
        "numeric sub": jwt.encode({"sub": user, "exp": now + timedelta(hours=1)}, JWT_SECRET,
                                  algorithm="HS256"),
        "sub 0": token({"sub": "0"}),
        "sub negative": token({"sub": "-1"}),
        "sub not a number": token({"sub": "admin"}),
        "sub past bigint": token({"sub": "9223372036854775808"}),
        "sub SQL": token({"sub": "1 OR 1=1"}),
        "sub of nobody": token({"sub": "987654321"}),
        "sub max bigint": token({"sub": "9223372036854775807"}),
        "two tokens": f"{valid} {valid}",
    }
    headers = {name: {"Authorization": f"Bearer {value}"} for name, value in bearer_only.items()}
    headers.update({
        "no header": {},
        "empty bearer": {"Authorization": "Bearer "},
        "scheme only": {"Authorization": "Bearer"},
        "basic auth": {"Authorization": "Basic " + base64.b64encode(b"user:pass").decode()},
        "token without scheme": {"Authorization": valid},
        "token in a query-like header": {"X-Access-Token": valid},
    })
    return headers


@pytest.fixture
def scene(admin: psycopg.Connection, world: World) -> dict:
    """An available slot, and an appointment with a distinctive reason that is cancelled,
    and one that is booked; plus the strings that would betray them."""
    free = make_slot(admin, world, NOW + timedelta(days=2, minutes=7))
    booked = make_slot(admin, world, NOW + timedelta(days=3, minutes=13))
    other = make_slot(admin, world, NOW + timedelta(days=4, minutes=17))
    appointment = admin.execute("SELECT * FROM book_slot(%s, %s)",
                                (world.patient_user, booked["id"])).fetchone()
    gone = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, other["id"])).fetchone()
    reason = f"secret-reason-{uuid.uuid4().hex}"
    admin.execute("SELECT * FROM cancel_appointment(%s, %s, %s)", (world.patient_user, gone["id"], reason))
    away = admin.execute("SELECT * FROM create_time_off(%s, %s, %s, %s, %s)",
                         (world.practitioner_user, world.practitioner, NOW + timedelta(days=30),
                          NOW + timedelta(days=31), f"{reason}-time-off")).fetchone()
    admin.execute("SELECT * FROM set_schedule(%s, %s, %s)",
                  (world.practitioner_user, world.practitioner, Jsonb([{**RULE, "start": "07:13"}])))
    person = admin.execute("SELECT email, name FROM users WHERE id = %s", (world.patient_user,)).fetchone()
    return {"free": free["id"], "booked_slot": booked["id"], "appointment": appointment["id"],
            "cancelled": gone["id"], "time_off": away["id"],
            "secrets": [iso(booked["start_time"])[:19], iso(other["start_time"])[:19],
                        iso(free["start_time"])[:19], reason, person["email"], person["name"],
                        "patient_id", "slot_id", "cancellation_reason", "start_time", "07:13",
                        iso(away["start_time"])[:19], "appointment_id"]}


def snapshot(admin: psycopg.Connection) -> list:
    return admin.execute(
        "SELECT (SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM availability_slots t) AS slots, "
        "(SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM appointments t) AS appointments, "
        "(SELECT count(*) FROM appointment_history) AS history, "
        "(SELECT count(*) FROM practitioner_booking_settings) AS settings, "
        "(SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM time_off_periods t) AS time_off, "
        "(SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM schedule_rules t) AS rules").fetchall()


def protected_requests(world: World, scene: dict) -> list[tuple[str, str, dict | None]]:
    """Every protected endpoint, with a body that would succeed for the rightful caller."""
    start = NOW + timedelta(days=9)
    times = {"start_time": iso(start), "end_time": iso(start + timedelta(minutes=30))}
    return [
        ("POST", f"/v1/practitioners/{world.practitioner}/slots", times),
        ("GET", f"/v1/practitioners/{world.practitioner}/slots", None),
        ("GET", f"/v1/practitioners/{world.practitioner}/slots?date=2027-03-03", None),
        ("GET", f"/v1/slots/{scene['free']}", None),
        ("PATCH", f"/v1/slots/{scene['free']}", times),
        ("DELETE", f"/v1/slots/{scene['free']}", None),
        ("POST", "/v1/appointments", {"slot_id": scene["free"]}),
        ("GET", f"/v1/appointments/{scene['appointment']}", None),
        ("POST", f"/v1/appointments/{scene['appointment']}/cancel", {"reason": "x"}),
        ("GET", f"/v1/patients/{world.patient}/appointments", None),
        ("GET", f"/v1/practitioners/{world.practitioner}/appointments", None),
        ("GET", f"/v1/practitioners/{world.practitioner}/settings", None),
        ("PATCH", f"/v1/practitioners/{world.practitioner}/settings", {"time_zone": "Europe/Paris"}),
        ("GET", "/v1/me", None),
        ("GET", "/v1/practitioners", None),
        ("GET", f"/v1/practitioners/{world.practitioner}", None),
        ("GET", f"/v1/practitioners/{world.practitioner}/schedule", None),
        ("PUT", f"/v1/practitioners/{world.practitioner}/schedule", {"rules": [RULE]}),
        ("POST", f"/v1/practitioners/{world.practitioner}/schedule/publish", {"through": "2027-03-08"}),
        ("POST", f"/v1/practitioners/{world.practitioner}/time-off", times),
        ("GET", f"/v1/practitioners/{world.practitioner}/time-off", None),
        ("DELETE", f"/v1/practitioners/{world.practitioner}/time-off/{scene['time_off']}", None),
        ("POST", f"/v1/practitioners/{world.practitioner}/slots/bulk", {"slots": [times]}),
        ("DELETE", f"/v1/practitioners/{world.practitioner}/slots?from=2027-03-20&to=2027-03-21", None),
        ("GET", f"/v1/practitioners/{world.practitioner}/slots?status=all", None),
        ("POST", f"/v1/appointments/{scene['appointment']}/reschedule", {"slot_id": scene["free"]}),
        ("POST", f"/v1/appointments/{scene['appointment']}/complete", None),
        ("POST", f"/v1/appointments/{scene['appointment']}/no-show", None),
        ("GET", f"/v1/appointments/{scene['appointment']}/history", None),
        ("GET", f"/v1/patients/{world.patient}/appointments?status=all&limit=1", None),
    ]


@pytest.mark.filterwarnings("ignore:The HMAC key is:UserWarning")  # the HS512 forgery
def test_every_protected_endpoint_refuses_bad_tokens(client, admin, world, scene, caplog):
    caplog.set_level(logging.DEBUG)
    before = snapshot(admin)
    failures = []
    attempts = 0
    tokens = bad_tokens(world.practitioner_user)
    for method, path, body in protected_requests(world, scene):
        for name, headers in tokens.items():
            response = client.open(path, method=method, headers=headers, json=body)
            attempts += 1
            text = response.get_data(as_text=True)
            ok = (response.status_code == 401 and response.mimetype == "application/problem+json"
                  and response.get_json()["code"] == "unauthorized"
                  and response.headers.get("WWW-Authenticate", "").startswith("Bearer"))
            if not ok:
                failures.append(f"{method} {path} [{name}]: {response.status_code} {text[:150]}")
            value = headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if len(value) > 8 and value in text:
                failures.append(f"{method} {path} [{name}]: token echoed")
    assert failures == [], "\n".join(failures)
    assert attempts == len(tokens) * len(protected_requests(world, scene))
    assert snapshot(admin) == before
    for headers in tokens.values():
        value = headers.get("Authorization", "")
        for part in value.split():
            if len(part) > 16:
                assert part not in caplog.text
    # Health needs no token.
    assert client.get("/v1/healthz").status_code == 200


def test_a_good_token_passes(client, world, scene):
    """Control: the same requests with a proper token are not refused for authentication."""
    response = client.get(f"/v1/slots/{scene['free']}", headers=bearer(world.patient_user))
    assert response.status_code == 200


def matrix(world: World, scene: dict) -> list[tuple[str, str, dict | None, list[str], str]]:
    """(method, path, body, callers who must be refused, the rightful caller)."""
    start = NOW + timedelta(days=9)
    times = {"start_time": iso(start), "end_time": iso(start + timedelta(minutes=30))}
    outsiders = ["other_patient", "other_practitioner", "stranger"]
    return [
        ("POST", f"/v1/practitioners/{world.practitioner}/slots", times,
         ["patient", *outsiders], "practitioner"),
        ("PATCH", f"/v1/slots/{scene['free']}", times, ["patient", *outsiders], "practitioner"),
        ("DELETE", f"/v1/slots/{scene['free']}", None, ["patient", *outsiders], "practitioner"),
        ("PATCH", f"/v1/slots/{scene['booked_slot']}", times, ["patient", *outsiders], None),
        ("DELETE", f"/v1/slots/{scene['booked_slot']}", None, ["patient", *outsiders], None),
        ("POST", "/v1/appointments", {"slot_id": scene["free"]},
         ["practitioner", "other_practitioner", "stranger"], "patient"),
        ("GET", f"/v1/appointments/{scene['appointment']}", None, outsiders, "patient"),
        ("GET", f"/v1/appointments/{scene['cancelled']}", None, outsiders, "practitioner"),
        ("POST", f"/v1/appointments/{scene['appointment']}/cancel", {"reason": "x"}, outsiders, None),
        ("POST", f"/v1/appointments/{scene['cancelled']}/cancel", {"reason": "x"}, outsiders, None),
        ("GET", f"/v1/patients/{world.patient}/appointments", None,
         ["practitioner", *outsiders], "patient"),
        ("GET", f"/v1/practitioners/{world.practitioner}/appointments", None,
         ["patient", *outsiders], "practitioner"),
        ("PATCH", f"/v1/practitioners/{world.practitioner}/settings", {"time_zone": "Europe/Paris"},
         ["patient", *outsiders], None),
        ("GET", f"/v1/practitioners/{world.practitioner}/schedule", None, ["patient", *outsiders], None),
        ("PUT", f"/v1/practitioners/{world.practitioner}/schedule", {"rules": [RULE]},
         ["patient", *outsiders], None),
        ("POST", f"/v1/practitioners/{world.practitioner}/schedule/publish", {"through": "2027-03-08"},
         ["patient", *outsiders], None),
        ("POST", f"/v1/practitioners/{world.practitioner}/time-off", times, ["patient", *outsiders], None),
        ("GET", f"/v1/practitioners/{world.practitioner}/time-off", None, ["patient", *outsiders], "practitioner"),
        ("DELETE", f"/v1/practitioners/{world.practitioner}/time-off/{scene['time_off']}", None,
         ["patient", *outsiders], None),
        ("DELETE", f"/v1/practitioners/{world.other_practitioner}/time-off/{scene['time_off']}", None,
         ["practitioner"], None),
        ("POST", f"/v1/practitioners/{world.practitioner}/slots/bulk", {"slots": [times]},
         ["patient", *outsiders], None),
        ("DELETE", f"/v1/practitioners/{world.practitioner}/slots?from=2027-03-01&to=2027-03-31", None,
         ["patient", *outsiders], None),
        ("GET", f"/v1/practitioners/{world.practitioner}/slots?status=booked", None,
         ["patient", *outsiders], "practitioner"),
        ("GET", f"/v1/practitioners/{world.practitioner}/slots?status=all", None,
         ["patient", *outsiders], "practitioner"),
        ("POST", f"/v1/appointments/{scene['appointment']}/reschedule", {"slot_id": scene["free"]}, outsiders,
         None),
        ("POST", f"/v1/appointments/{scene['cancelled']}/reschedule", {"slot_id": scene["free"]}, outsiders,
         None),
        ("POST", f"/v1/appointments/{scene['appointment']}/complete", None, ["patient", *outsiders], None),
        ("POST", f"/v1/appointments/{scene['appointment']}/no-show", None, ["patient", *outsiders], None),
        ("GET", f"/v1/appointments/{scene['appointment']}/history", None, outsiders, None),
        ("GET", f"/v1/appointments/{scene['cancelled']}/history", None, outsiders, None),
        ("GET", f"/v1/patients/{world.patient}/appointments?status=all", None,
         ["practitioner", *outsiders], "patient"),
        ("GET", f"/v1/practitioners/{world.practitioner}/appointments?status=cancelled", None,
         ["patient", *outsiders], "practitioner"),
    ]


def test_access_matrix(client, admin, world, scene):
    before = snapshot(admin)
    failures = []
    refused = 0
    for method, path, body, callers, _ in matrix(world, scene):
        for caller in callers:
            response = client.open(path, method=method, json=body,
                                   headers=bearer(getattr(world, f"{caller}_user")))
            text = response.get_data(as_text=True)
            if response.status_code not in (403, 404):
                failures.append(f"{caller} {method} {path}: {response.status_code} {text[:150]}")
                continue
            refused += 1
            payload = response.get_json()
            if payload["code"] not in ("forbidden", "not_found") or set(payload) - PROBLEM_KEYS:
                failures.append(f"{caller} {method} {path}: body {payload}")
            leaked = [s for s in scene["secrets"] if s in text]
            if leaked:
                failures.append(f"{caller} {method} {path}: leaks {leaked}")
    assert failures == [], "\n".join(failures)
    assert refused == sum(len(row[3]) for row in matrix(world, scene))
    assert snapshot(admin) == before
    # Control: the rightful reader sees the data the others were denied.
    for method, path, _, _, rightful in matrix(world, scene):
        if method == "GET" and rightful:
            response = client.get(path, headers=bearer(getattr(world, f"{rightful}_user")))
            assert response.status_code == 200
            assert any(s in response.get_data(as_text=True) for s in scene["secrets"][:4])


def test_a_500_shows_nothing_and_logs_no_token(client, admin, world, scene, caplog):
    """Break the database under the API (a function goes missing): the client gets a bare 500."""
    caplog.set_level(logging.DEBUG)
    admin.execute("DROP FUNCTION get_slot(bigint, bigint)")
    client.check_contract = False  # a 500 is a bug, so the contract does not list it
    headers = bearer(world.patient_user)
    response = client.get(f"/v1/slots/{scene['free']}", headers=headers)
    assert response.status_code == 500
    body = response.get_json()
    assert body["code"] == "internal_error" and set(body) <= PROBLEM_KEYS
    text = response.get_data(as_text=True)
    for word in ("get_slot", "function", "SELECT", "Traceback", "psycopg", "does not exist"):
        assert word not in text
    # The log has what an operator needs (the request id and the cause), and no token.
    assert body["request_id"] in caplog.text
    assert "get_slot" in caplog.text
    assert headers["Authorization"].split()[1] not in caplog.text
    assert "Bearer" not in caplog.text
