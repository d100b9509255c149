"""Hostile and broken input, table-driven, over every endpoint and every field.

Each case is sent by a caller who would otherwise be allowed to make the
request (so a wrong answer cannot hide behind a 403), and must get its
documented 4xx (docs/ERRORS.md) as a problem with a machine code: never a 500,
never a body with SQL or a stack trace. Afterwards the database is exactly as
before (row counts and a digest of every booking table).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from conftest import NOW, World, bearer, iso, make_slot

FUTURE = NOW + timedelta(days=5)
VALID_START = iso(FUTURE)
VALID_END = iso(FUTURE + timedelta(minutes=30))
BIGINT_MAX = 2**63 - 1
RULE = {"weekday": 1, "start": "09:00", "end": "12:00", "slot_minutes": 30}
# Query strings no listing or range delete accepts (the lists take at most 31 days, the delete 366).
BAD_RANGE_QUERIES = ["from=2027-03-01", "to=2027-03-31", "from=2027-03-31&to=2027-03-01",
                     "from=2027-03-01&to=2028-04-04", "from=2027-03-01&to=2027-04-01",
                     "date=2027-03-02&from=2027-03-01&to=2027-03-03", "from=2027-02-30&to=2027-03-03",
                     "from=yesterday&to=2027-03-03", "status=cancelled", "status=", "status=AVAILABLE",
                     "limit=0", "limit=501", "limit=-1", "limit=1.5", "limit=abc", "limit=" + "9" * 30]
FORGED_CURSORS = ["x", "A" * 44, "AAAGukZbJqQAAAAAAAADDUEf9m8ESFsHxo9732LY52sR", "_" * 44, "A" * 43 + "=",
                  "A" * 4000, "%27%3B%20DROP%20TABLE%20users%3B--", "Zm9vYmFy", "%C3%A9" * 44]
INJECTIONS = ["1; DROP TABLE users; --", "' OR '1'='1", "1 UNION SELECT email FROM users",
              "$$; SELECT pg_sleep(10); $$", "Robert'); DROP TABLE appointments;--"]
LEAKS = ["Traceback", "psycopg", "SELECT", "CONTEXT:", "PL/pgSQL", "line ", "File \"", "DETAIL"]

BAD_TIMES: list[tuple[Any, int, str]] = [
    (None, 400, "validation_error"),
    (1772528400, 400, "validation_error"),
    (True, 400, "validation_error"),
    ("", 400, "validation_error"),
    ([VALID_START], 400, "validation_error"),
    ({"at": VALID_START}, 400, "validation_error"),
    ("2027-03-06T09:00:00", 400, "validation_error"),          # no offset
    ("2027-03-06 09:00", 400, "validation_error"),
    ("2027-03-06", 400, "validation_error"),
    ("2027-02-30T09:00:00Z", 400, "validation_error"),         # no such date
    ("2027-13-01T09:00:00Z", 400, "validation_error"),
    ("2027-03-06T24:00:00Z", 400, "validation_error"),
    ("2027-03-06T09:00:60Z", 400, "validation_error"),         # leap second
    ("2027-03-06T09:00:00+24:00", 400, "validation_error"),    # no such offset
    ("2027-03-06T09:00:00.1234567Z", 400, "validation_error"),
    ("２０２７-03-06T09:00:00Z", 400, "validation_error"),  # noqa: RUF001 (non-ASCII digits)
    ("0000-01-01T00:00:00Z", 400, "validation_error"),
    (" 2027-03-06T09:00:00Z", 400, "validation_error"),
    ("2027-03-06T09:00:00Z\x00", 400, "validation_error"),
    ("infinity", 400, "validation_error"),
    ("now", 400, "validation_error"),
    ("x" * 60_000, 400, "validation_error"),
    *[(injection, 400, "validation_error") for injection in INJECTIONS],
    ("2027-03-06T09:00:00Z'; DROP TABLE users;--", 400, "validation_error"),
]
BAD_IDS: list[tuple[Any, int, str]] = [
    (None, 400, "validation_error"),
    ("1", 400, "validation_error"),
    (1.5, 400, "validation_error"),
    (1e300, 400, "validation_error"),
    (True, 400, "validation_error"),
    (False, 400, "validation_error"),
    (0, 400, "validation_error"),
    (-1, 400, "validation_error"),
    (BIGINT_MAX + 1, 400, "validation_error"),
    (10**30, 400, "validation_error"),
    (BIGINT_MAX, 404, "not_found"),
    ([1], 400, "validation_error"),
    ({"$gt": 0}, 400, "validation_error"),
    *[(injection, 400, "validation_error") for injection in INJECTIONS],
]
BAD_PATH_IDS: list[tuple[str, int, str]] = [
    ("0", 400, "validation_error"),
    ("-1", 400, "validation_error"),
    ("abc", 400, "validation_error"),
    ("1.5", 400, "validation_error"),
    ("1e3", 400, "validation_error"),
    ("+1", 400, "validation_error"),
    ("0x10", 400, "validation_error"),
    ("%20%31", 400, "validation_error"),
    ("%EF%BC%91", 400, "validation_error"),  # fullwidth digit one
    ("1%00", 400, "validation_error"),
    ("9223372036854775808", 400, "validation_error"),
    ("99999999999999999999999999", 400, "validation_error"),
    ("9223372036854775807", 404, "not_found"),
    ("1%27%20OR%20%271%27%3D%271", 400, "validation_error"),
    ("null", 400, "validation_error"),
]


@dataclass
class Scene:
    world: World
    slot: int          # available, the practitioner's
    booked_slot: int
    appointment: int   # the patient's, on booked_slot


@pytest.fixture
def scene(admin: psycopg.Connection, world: World) -> Scene:
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    booked = make_slot(admin, world, NOW + timedelta(days=3))
    appointment = admin.execute("SELECT * FROM book_slot(%s, %s)",
                                (world.patient_user, booked["id"])).fetchone()
    return Scene(world, slot["id"], booked["id"], appointment["id"])


def snapshot(admin: psycopg.Connection) -> dict:
    tables = ["users", "practitioners", "patients", "availability_slots", "appointments",
              "appointment_history", "practitioner_booking_settings", "booking_clock", "schedule_rules",
              "time_off_periods", "idempotency_keys"]
    return {table: admin.execute(
        f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS digest "
        f"FROM {table} t").fetchone() for table in tables}


def send(client, method: str, path: str, user: int, body: Any = None, *, raw: bytes | None = None,
         content_type: str | None = "application/json"):
    headers = bearer(user)
    if content_type is not None:
        headers["Content-Type"] = content_type
    data = raw if raw is not None else (None if body is None else json.dumps(body))
    return client.open(path, method=method, headers=headers, data=data)


def check(response, status: int, code: str, label: str, failures: list[str]) -> None:
    text = response.get_data(as_text=True)
    problems = []
    if response.status_code != status:
        problems.append(f"status {response.status_code}, expected {status}")
    if response.mimetype != "application/problem+json":
        problems.append(f"type {response.mimetype}")
    else:
        body = response.get_json()
        if body.get("code") != code:
            problems.append(f"code {body.get('code')}, expected {code}")
        if not body.get("title") or body.get("status") != response.status_code:
            problems.append("not a problem document")
    leaked = [word for word in LEAKS if word in text]
    if leaked:
        problems.append(f"leaks {leaked}")
    if problems:
        failures.append(f"{label}: {'; '.join(problems)}: {text[:200]}")


def body_endpoints(scene: Scene) -> list[tuple[str, str, int, dict]]:
    """(method, path, user, a valid body) of every endpoint that takes a JSON body."""
    w = scene.world
    return [
        ("POST", f"/v1/practitioners/{w.practitioner}/slots", w.practitioner_user,
         {"start_time": VALID_START, "end_time": VALID_END}),
        ("PATCH", f"/v1/slots/{scene.slot}", w.practitioner_user,
         {"start_time": VALID_START, "end_time": VALID_END}),
        ("POST", "/v1/appointments", w.patient_user, {"slot_id": scene.slot}),
        ("POST", f"/v1/appointments/{scene.appointment}/cancel", w.patient_user, {"reason": "ill"}),
        ("PATCH", f"/v1/practitioners/{w.practitioner}/settings", w.practitioner_user,
         {"time_zone": "Europe/London", "cancellation_notice_minutes": 120}),
        ("PUT", f"/v1/practitioners/{w.practitioner}/schedule", w.practitioner_user, {"rules": [RULE]}),
        ("POST", f"/v1/practitioners/{w.practitioner}/schedule/publish", w.practitioner_user,
         {"through": "2027-03-08"}),
        ("POST", f"/v1/practitioners/{w.practitioner}/time-off", w.practitioner_user,
         {"start_time": VALID_START, "end_time": VALID_END, "reason": "away"}),
        ("POST", f"/v1/practitioners/{w.practitioner}/slots/bulk", w.practitioner_user,
         {"slots": [{"start_time": VALID_START, "end_time": VALID_END}]}),
        ("POST", f"/v1/appointments/{scene.appointment}/reschedule", w.patient_user, {"slot_id": scene.slot}),
        ("POST", f"/v1/appointments/{scene.appointment}/complete", w.practitioner_user, {}),
        ("POST", f"/v1/appointments/{scene.appointment}/no-show", w.practitioner_user, {}),
    ]


# Endpoints whose body may be absent or empty ({} is a valid body there).
NO_BODY_NEEDED = ("/cancel", "/complete", "/no-show")


def test_broken_bodies(client, admin, scene):
    before = snapshot(admin)
    failures: list[str] = []
    for method, path, user, valid in body_endpoints(scene):
        text = json.dumps(valid)
        cases: list[tuple[str, dict, int, str]] = [
            ("malformed JSON", {"raw": text[:-1].encode()}, 400, "validation_error"),
            ("trailing garbage", {"raw": (text + "x").encode()}, 400, "validation_error"),
            ("JSON array", {"raw": b"[]"}, 400, "validation_error"),
            ("JSON string", {"raw": b'"x"'}, 400, "validation_error"),
            ("JSON null", {"raw": b"null"}, 400, "validation_error"),
            ("JSON number", {"raw": b"12"}, 400, "validation_error"),
            ("invalid UTF-8", {"raw": b'{"x": "\xff\xfe"}'}, 400, "validation_error"),
            ("NaN", {"raw": text.replace("}", ', "n": NaN}').encode()}, 400, "validation_error"),
            ("deep nesting", {"raw": b"[" * 100_000 + b"]" * 100_000}, 413, "payload_too_large"),
            ("deep nesting under the limit", {"raw": b'{"a":' * 9_000 + b"1" + b"}" * 9_000},
             400, "validation_error"),
            ("unknown field", {"body": {**valid, "status": "booked"}}, 400, "validation_error"),
            ("duplicate-looking unknown field", {"body": {**valid, "slot_id ": 1}}, 400,
             "validation_error"),
            ("NUL in a key", {"body": {**valid, "a\x00": 1}}, 400, "validation_error"),
            ("1 MB body", {"body": {**valid, "padding": "x" * (1 << 20)}}, 413, "payload_too_large"),
            ("1 MB of whitespace", {"raw": text.encode() + b" " * (1 << 20)}, 413, "payload_too_large"),
            ("text/plain", {"body": valid, "content_type": "text/plain"}, 415, "unsupported_media_type"),
            ("form encoded", {"raw": b"slot_id=1", "content_type": "application/x-www-form-urlencoded"},
             415, "unsupported_media_type"),
            ("no content type", {"body": valid, "content_type": None}, 415, "unsupported_media_type"),
            ("merge-patch type", {"body": valid, "content_type": "application/merge-patch+json"},
             415, "unsupported_media_type"),
        ]
        if not path.endswith(NO_BODY_NEEDED):  # optional bodies: empty means no reason, or nothing to say
            cases += [("empty body", {"raw": b""}, 400, "validation_error")]
        if not path.endswith((*NO_BODY_NEEDED, "/settings")):  # {} there: no reason, no change (200)
            cases += [("empty object", {"body": {}}, 400, "validation_error")]
        for label, spec, status, code in cases:
            response = send(client, method, path, user, spec.get("body"), raw=spec.get("raw"),
                            content_type=spec.get("content_type", "application/json"))
            check(response, status, code, f"{method} {path} {label}", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


def test_bad_times(client, admin, scene):
    before = snapshot(admin)
    failures: list[str] = []
    w = scene.world
    create = f"/v1/practitioners/{w.practitioner}/slots"
    patch = f"/v1/slots/{scene.slot}"
    for value, status, code in BAD_TIMES:
        for field in ("start_time", "end_time"):
            other = "end_time" if field == "start_time" else "start_time"
            body = {field: value, other: VALID_END if other == "end_time" else VALID_START}
            check(send(client, "POST", create, w.practitioner_user, body), status, code,
                  f"create {field}={value!r:.60}", failures)
            check(send(client, "PATCH", patch, w.practitioner_user, {field: value}), status, code,
                  f"patch {field}={value!r:.60}", failures)
    # Well-formed but unacceptable to the rules.
    rule_cases = [
        ("year 9999", "9999-12-31T09:00:00Z", "9999-12-31T09:30:00Z", 422, "invalid_time_range"),
        ("year 9999 past UTC midnight", "9999-12-31T23:00:00-14:00", "9999-12-31T23:30:00-14:00",
         422, "invalid_time_range"),
        ("year 1", "0001-01-01T00:00:00+14:00", "0001-01-01T00:30:00+14:00", 422, "slot_in_past"),
        ("ten-year slot", VALID_START, iso(FUTURE + timedelta(days=3653)), 422, "invalid_time_range"),
        ("24 hours and a second", VALID_START, iso(FUTURE + timedelta(hours=24, seconds=1)), 422,
         "invalid_time_range"),
        ("end before start", VALID_END, VALID_START, 422, "invalid_time_range"),
        ("zero length", VALID_START, VALID_START, 422, "invalid_time_range"),
        ("in the past", iso(NOW - timedelta(hours=1)), iso(NOW), 422, "slot_in_past"),
        ("three years ahead", iso(NOW + timedelta(days=1096)), iso(NOW + timedelta(days=1096, hours=1)),
         422, "invalid_time_range"),
    ]
    for label, start, end, status, code in rule_cases:
        check(send(client, "POST", create, w.practitioner_user, {"start_time": start, "end_time": end}),
              status, code, f"create {label}", failures)
        check(send(client, "PATCH", patch, w.practitioner_user, {"start_time": start, "end_time": end}),
              status, code, f"patch {label}", failures)
    check(send(client, "PATCH", patch, w.practitioner_user, {}), 400, "validation_error",
          "patch nothing", failures)
    check(send(client, "PATCH", patch, w.practitioner_user, {"start_time": None, "end_time": None}),
          400, "validation_error", "patch nulls", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


def test_bad_ids_in_bodies(client, admin, scene):
    before = snapshot(admin)
    failures: list[str] = []
    for value, status, code in BAD_IDS:
        check(send(client, "POST", "/v1/appointments", scene.world.patient_user, {"slot_id": value}),
              status, code, f"slot_id={value!r}", failures)
    check(send(client, "POST", "/v1/appointments", scene.world.patient_user,
               raw=b'{"slot_id": 1e999}'), 400, "validation_error", "slot_id=1e999", failures)
    check(send(client, "POST", "/v1/appointments", scene.world.patient_user,
               raw=b'{"slot_id": ' + b"9" * 5000 + b"}"), 400, "validation_error",
          "slot_id with 5000 digits", failures)
    check(send(client, "POST", "/v1/appointments", scene.world.patient_user,
               raw=b'{"slot_id": 1, "slot_id": "x"}'), 400, "validation_error",
          "duplicate key, last one wrong", failures)
    reschedule = f"/v1/appointments/{scene.appointment}/reschedule"
    for value, status, code in BAD_IDS:
        check(send(client, "POST", reschedule, scene.world.patient_user, {"slot_id": value}),
              status, code, f"reschedule slot_id={value!r}", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


def keyed_endpoints(scene: Scene) -> list[tuple[str, str, int, dict]]:
    """Every operation that takes an Idempotency-Key, with a body that would succeed or be refused by a rule."""
    keyed = ("/slots", "/slots/bulk", "/appointments", "/cancel", "/reschedule", "/complete", "/no-show")
    return [entry for entry in body_endpoints(scene) if entry[0] == "POST" and entry[1].endswith(keyed)]


BAD_KEYS: list[tuple[str, str]] = [
    ("empty", ""),
    ("256 characters", "k" * 256),
    ("60 KiB", "k" * 60_000),
    ("non-ASCII", "cl\u00e9"),
    ("tab", "a\tb"),
    ("DEL", "a\x7fb"),
    ("high byte", "\xff"),
    ("NUL", "a\x00"),
]
# Two Idempotency-Key lines reach the application as one value joined with ", " (WSGI
# combines repeated fields); that value is a well-formed key, so it is not a case here.


def test_bad_idempotency_keys(client, admin, scene):
    before = snapshot(admin)
    failures: list[str] = []
    for method, path, user, body in keyed_endpoints(scene):
        for label, key in BAD_KEYS:
            response = client.open(path, method=method, json=body,
                                   headers={**bearer(user), "Idempotency-Key": key})
            check(response, 400, "validation_error", f"{method} {path} key {label}", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


def test_bad_if_match(client, admin, scene):
    before = snapshot(admin)
    failures: list[str] = []
    w = scene.world
    requests = [("PATCH", f"/v1/slots/{scene.slot}", w.practitioner_user, {"start_time": VALID_START}),
                ("DELETE", f"/v1/slots/{scene.slot}", w.practitioner_user, None),
                ("PATCH", f"/v1/practitioners/{w.practitioner}/settings", w.practitioner_user, {"time_zone": "UTC"})]
    bad = ["", "1", "'1'", '"1', '1"', '"1",', ',"1"', '"1" "2"', "W/1", 'w/"1"', '*, "1"', "**", '"a"b"',
           '"\x00"', '"1";"2"', "\u00e9", '"1"' + ", " * 20_000]
    for method, path, user, body in requests:
        for value in bad:
            response = client.open(path, method=method, json=body, headers={**bearer(user), "If-Match": value})
            check(response, 400, "validation_error", f"{method} {path} If-Match {value[:20]!r}", failures)
        # Well-formed but stale: 412, and still nothing changes.
        response = client.open(path, method=method, json=body, headers={**bearer(user), "If-Match": '"99"'})
        check(response, 412, "precondition_failed", f"{method} {path} stale", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


def test_bad_list_parameters(client, admin, scene):
    before = snapshot(admin)
    failures: list[str] = []
    w = scene.world
    lists = [(f"/v1/patients/{w.patient}/appointments", w.patient_user),
             (f"/v1/practitioners/{w.practitioner}/appointments", w.practitioner_user)]
    queries = ["status=", "status=Upcoming", "status=booked", "status=upcoming&status=all", "status=%00",
               "status=all%27%3B--", "limit=0", "limit=101", "limit=-1", "limit=1.5", "limit=1e2", "limit=",
               "limit=%2B5", "limit=%205", "limit=99999999999999999999", "limit=true", "cursor=",
               "cursor=abc", "cursor=" + "A" * 600, "cursor=a.b", "cursor=%00", "cursor=..", "offset=10",
               "page=2", "sort=start_time"]
    for path, user in lists:
        for query in queries:
            check(send(client, "GET", f"{path}?{query}", user), 400, "validation_error", f"GET {path}?{query}",
                  failures)
    check(send(client, "GET", f"/v1/appointments/{scene.appointment}/history?status=all", w.patient_user),
          400, "validation_error", "history with a query", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


def test_bad_reasons(client, admin, scene):
    before = snapshot(admin)
    failures: list[str] = []
    path = f"/v1/appointments/{scene.appointment}/cancel"
    for value in [123, True, ["ill"], {"text": "ill"}, "x" * 1001, "é" * 1001, "😀" * 1001,
                  "ill\x00", "\ud800", "x" * (60 * 1024)]:
        check(send(client, "POST", path, scene.world.patient_user, {"reason": value}), 400,
              "validation_error", f"reason={value!r:.40}", failures)
    check(send(client, "POST", path, scene.world.patient_user, {"reason": "x" * (1 << 20)}), 413,
          "payload_too_large", "1 MB reason", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


def test_bad_settings(client, admin, scene):
    before = snapshot(admin)
    failures: list[str] = []
    path = f"/v1/practitioners/{scene.world.practitioner}/settings"
    zones = [None, 123, True, ["UTC"], "", "Mars/Olympus_Mons", "europe/london", "+05:00",
             "A" * 65, "UTC\x00", "\ud800", *INJECTIONS]
    minutes = [None, "60", 60.5, 1.5, True, False, [60], -1, 30 * 24 * 60 + 1, 10**9 + 1,
               BIGINT_MAX + 1, 10**30]
    for value in zones:
        check(send(client, "PATCH", path, scene.world.practitioner_user, {"time_zone": value}),
              400, "validation_error", f"time_zone={value!r:.40}", failures)
    for value in minutes:
        check(send(client, "PATCH", path, scene.world.practitioner_user,
                   {"cancellation_notice_minutes": value}),
              400, "validation_error", f"cancellation_notice_minutes={value!r:.40}", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


@pytest.mark.parametrize("reason", ["é" * 1000, "😀" * 1000, "中文" * 500,
                                    "Ünïcödé – “quotes” ‘and’ ½ ∞ \u200b zero-width",  # noqa: RUF001
                                    "'; DROP TABLE users;--"])
def test_long_and_non_ascii_reasons_are_kept_exactly(client, admin, scene, reason):
    response = send(client, "POST", f"/v1/appointments/{scene.appointment}/cancel",
                    scene.world.patient_user, {"reason": reason})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["cancellation_reason"] == reason
    stored = admin.execute("SELECT cancellation_reason FROM appointments WHERE id = %s",
                           (scene.appointment,)).fetchone()["cancellation_reason"]
    assert stored == reason
    assert admin.execute("SELECT count(*) AS n FROM users").fetchone()["n"] == 5


def test_bad_path_ids(client, admin, scene):
    before = snapshot(admin)
    failures: list[str] = []
    w = scene.world
    for raw, status, code in BAD_PATH_IDS:
        requests = [
            ("POST", f"/v1/practitioners/{raw}/slots", w.practitioner_user,
             {"start_time": VALID_START, "end_time": VALID_END}),
            ("GET", f"/v1/practitioners/{raw}/slots", w.patient_user, None),
            ("GET", f"/v1/slots/{raw}", w.patient_user, None),
            ("PATCH", f"/v1/slots/{raw}", w.practitioner_user, {"start_time": VALID_START}),
            ("DELETE", f"/v1/slots/{raw}", w.practitioner_user, None),
            ("GET", f"/v1/appointments/{raw}", w.patient_user, None),
            ("POST", f"/v1/appointments/{raw}/cancel", w.patient_user, {"reason": "ill"}),
            ("GET", f"/v1/patients/{raw}/appointments", w.patient_user, None),
            ("GET", f"/v1/practitioners/{raw}/appointments", w.practitioner_user, None),
            ("GET", f"/v1/practitioners/{raw}/settings", w.patient_user, None),
            ("PATCH", f"/v1/practitioners/{raw}/settings", w.practitioner_user, {"time_zone": "UTC"}),
            ("GET", f"/v1/practitioners/{raw}", w.patient_user, None),
            ("GET", f"/v1/practitioners/{raw}/schedule", w.practitioner_user, None),
            ("PUT", f"/v1/practitioners/{raw}/schedule", w.practitioner_user, {"rules": []}),
            ("POST", f"/v1/practitioners/{raw}/schedule/publish", w.practitioner_user, {"through": "2027-03-08"}),
            ("POST", f"/v1/practitioners/{raw}/time-off", w.practitioner_user,
             {"start_time": VALID_START, "end_time": VALID_END}),
            ("GET", f"/v1/practitioners/{raw}/time-off", w.practitioner_user, None),
            ("DELETE", f"/v1/practitioners/{raw}/time-off/1", w.practitioner_user, None),
            ("DELETE", f"/v1/practitioners/{w.practitioner}/time-off/{raw}", w.practitioner_user, None),
            ("POST", f"/v1/practitioners/{raw}/slots/bulk", w.practitioner_user,
             {"slots": [{"start_time": VALID_START, "end_time": VALID_END}]}),
            ("DELETE", f"/v1/practitioners/{raw}/slots?from=2027-03-01&to=2027-03-02", w.practitioner_user, None),
            ("POST", f"/v1/appointments/{raw}/reschedule", w.patient_user, {"slot_id": scene.slot}),
            ("POST", f"/v1/appointments/{raw}/complete", w.practitioner_user, None),
            ("POST", f"/v1/appointments/{raw}/no-show", w.practitioner_user, None),
            ("GET", f"/v1/appointments/{raw}/history", w.patient_user, None),
        ]
        for method, path, user, body in requests:
            check(send(client, method, path, user, body), status, code, f"{method} {path}", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


def test_bad_queries(client, admin, scene):
    before = snapshot(admin)
    failures: list[str] = []
    w = scene.world
    slots = f"/v1/practitioners/{w.practitioner}/slots"
    cases = [
        ("date=2027-02-30", 400, "validation_error"),
        ("date=2027-13-01", 400, "validation_error"),
        ("date=2027-3-1", 400, "validation_error"),
        ("date=27-03-01", 400, "validation_error"),
        ("date=0000-01-01", 400, "validation_error"),
        ("date=2027-03-01T00:00:00Z", 400, "validation_error"),
        ("date=", 400, "validation_error"),
        ("date=%00", 400, "validation_error"),
        ("date=2027-03-01&date=2027-03-02", 400, "validation_error"),
        ("date=2027-03-01%27%3B%20DROP%20TABLE%20users%3B--", 400, "validation_error"),
        ("date=2027-03-01&tz=Mars/Olympus_Mons", 400, "validation_error"),
        ("date=2027-03-01&tz=", 400, "validation_error"),
        ("date=2027-03-01&tz=" + "A" * 65, 400, "validation_error"),
        ("date=2027-03-01&tz=UTC%00", 400, "validation_error"),
        ("date=2027-03-01&tz=UTC%27%3B%20DROP%20TABLE%20users%3B--", 400, "validation_error"),
        ("date=2027-03-01&tz=%2B05%3A00", 400, "validation_error"),
        ("date=2027-03-01&tz=europe%2Flondon", 400, "validation_error"),
        ("date=2027-03-01&tz=Europe/London&tz=UTC", 400, "validation_error"),
        ("limit=1000", 400, "validation_error"),
        ("status=booked", 403, "forbidden"),
        ("status=all", 403, "forbidden"),
        ("date=%FF%FE", 400, "validation_error"),
        *[(query, 400, "validation_error") for query in BAD_RANGE_QUERIES],
        *[(f"cursor={cursor}", 400, "invalid_cursor") for cursor in FORGED_CURSORS],
        ("cursor=%00", 400, "validation_error"),
    ]
    for query, status, code in cases:
        check(send(client, "GET", f"{slots}?{query}", w.patient_user), status, code,
              f"GET slots?{query}", failures)
    check(send(client, "GET", f"/v1/patients/{w.patient}/appointments?limit=500", w.patient_user),
          400, "validation_error", "patient list with limit 500", failures)
    check(send(client, "GET", f"/v1/practitioners/{w.practitioner}/appointments?status=booked",
               w.practitioner_user), 400, "validation_error", "practitioner list with status booked", failures)
    # Far but valid dates are simply empty.
    for query in ("date=9999-12-31", "date=0001-01-01", "date=2027-03-01&tz=Pacific/Kiritimati"):
        response = send(client, "GET", f"{slots}?{query}", w.patient_user)
        if response.status_code != 200 or response.get_json() != {"data": [], "next_cursor": None}:
            failures.append(f"GET slots?{query}: {response.status_code} {response.get_data(as_text=True)[:200]}")
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


def test_wrong_methods_and_routes(client, admin, scene):
    before = snapshot(admin)
    failures: list[str] = []
    w = scene.world
    for method, path in [("PUT", f"/v1/slots/{scene.slot}"), ("POST", f"/v1/slots/{scene.slot}"),
                         ("DELETE", f"/v1/appointments/{scene.appointment}"),
                         ("PATCH", f"/v1/appointments/{scene.appointment}"),
                         ("GET", f"/v1/appointments/{scene.appointment}/cancel"),
                         ("PATCH", f"/v1/practitioners/{w.practitioner}/slots"),
                         ("GET", f"/v1/practitioners/{w.practitioner}/slots/bulk"),
                         ("DELETE", f"/v1/practitioners/{w.practitioner}/schedule"),
                         ("GET", f"/v1/practitioners/{w.practitioner}/schedule/publish"),
                         ("GET", f"/v1/practitioners/{w.practitioner}/time-off/1"),
                         ("DELETE", f"/v1/practitioners/{w.practitioner}"),
                         ("POST", "/v1/me"),
                         ("GET", f"/v1/appointments/{scene.appointment}/reschedule"),
                         ("PUT", f"/v1/appointments/{scene.appointment}/complete"),
                         ("GET", f"/v1/appointments/{scene.appointment}/no-show"),
                         ("POST", f"/v1/appointments/{scene.appointment}/history"),
                         ("POST", "/v1/healthz")]:
        response = send(client, method, path, w.practitioner_user, {})
        check(response, 405, "method_not_allowed", f"{method} {path}", failures)
        if "Allow" not in response.headers:
            failures.append(f"{method} {path}: no Allow header")
    for path in ["/v1/slot/1", "/v1/slots/1/2", "/v2/slots/1", "/v1/appointments/1/uncancel",
                 "/v1/../etc/passwd", "/v1/slots/" + "9" * 5000]:
        check(send(client, "GET", path, w.patient_user), 404 if "9999" not in path else 400,
              "not_found" if "9999" not in path else "validation_error", f"GET {path[:40]}", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


def test_bad_schedules(client, admin, scene):
    """Every field of a rule, broken in every way: a clear 4xx, and the rules stay as they were."""
    w = scene.world
    path = f"/v1/practitioners/{w.practitioner}/schedule"
    assert send(client, "PUT", path, w.practitioner_user, {"rules": [{**RULE, "weekday": 5}]}).status_code == 200
    before = snapshot(admin)
    failures: list[str] = []
    malformed = [
        *[{"weekday": value} for value in (0, 8, -1, 1.5, "1", "Monday", True, None, [1], {"d": 1}, 10**30)],
        *[{key: value} for key in ("start", "end")
          for value in ("24:00", "9:00", "09:00:00", "09:60", "25:00", "0900", "", " 09:00", "09:00 ", 900, None,
                        True, "09:00\u0000", "０９:００", "09.00", "-1:00")],  # noqa: RUF001
        *[{"slot_minutes": value} for value in (0, 4, 481, -30, 30.5, "30", None, True, 10**12, [30])],
        *[{key: value} for key in ("valid_from", "valid_until")
          for value in ("2027-02-30", "2027-13-01", "27-03-01", "2027-3-1", "tomorrow", 20270301, True, "",
                        "2027-03-01T00:00:00Z")],
        {"colour": "blue"}, {"weekday ": 1},
    ]
    for change in malformed:
        rule = {**RULE, **change}
        check(send(client, "PUT", path, w.practitioner_user, {"rules": [rule]}), 400, "validation_error",
              f"rule {change!r:.50}", failures)
    for rules in (None, "x", 1, {"weekday": 1}, [1], ["rule"], [[RULE]], [{**RULE, "end": None}],
                  [{key: value for key, value in RULE.items() if key != "slot_minutes"}], [RULE] * 201,
                  [{**RULE, "start": {"h": 9}}], [{**RULE, "start": ["09:00"]}]):
        check(send(client, "PUT", path, w.practitioner_user, {"rules": rules}), 400, "validation_error",
              f"rules={rules!r:.50}", failures)
    for rules, label in ([[{**RULE, "start": "12:00", "end": "09:00"}], "end before start"],
                         [[{**RULE, "end": "09:00"}], "end equals start"],
                         [[{**RULE, "end": "09:04", "slot_minutes": 5}], "shorter than one slot"],
                         [[{**RULE, "valid_from": "2027-05-02", "valid_until": "2027-05-01"}], "validity backwards"],
                         [[RULE, {**RULE, "start": "11:59", "end": "13:00"}], "overlap"]):
        check(send(client, "PUT", path, w.practitioner_user, {"rules": rules}), 422, "invalid_schedule",
              label, failures)
    check(send(client, "PUT", path, w.practitioner_user, raw=b'{"rules": [{"weekday": NaN}]}'), 400,
          "validation_error", "NaN", failures)
    check(send(client, "PUT", path, w.practitioner_user, raw=b'{"rules": [{"weekday": 1e999}]}'), 400,
          "validation_error", "1e999", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


def test_bad_publish_time_off_and_bulk(client, admin, scene):
    w = scene.world
    before = snapshot(admin)
    failures: list[str] = []
    publish = f"/v1/practitioners/{w.practitioner}/schedule/publish"
    for value in ("2027-02-30", "2027-3-8", "next week", 20270308, None, True, "", "2027-03-08T00:00:00Z",
                  ["2027-03-08"], "２０２７-03-08"):  # noqa: RUF001
        check(send(client, "POST", publish, w.practitioner_user, {"through": value}), 400, "validation_error",
              f"through={value!r:.40}", failures)
    for value in ("2027-02-28", "2029-03-02", "9999-12-31", "0001-01-01"):
        check(send(client, "POST", publish, w.practitioner_user, {"through": value}), 422, "invalid_time_range",
              f"through={value}", failures)

    time_off = f"/v1/practitioners/{w.practitioner}/time-off"
    for value, status, code in BAD_TIMES:
        for field in ("start_time", "end_time"):
            body = {"start_time": VALID_START, "end_time": VALID_END, field: value}
            check(send(client, "POST", time_off, w.practitioner_user, body), status, code,
                  f"time off {field}={value!r:.40}", failures)
    for body, code in (({"start_time": VALID_END, "end_time": VALID_START}, "invalid_time_range"),
                       ({"start_time": VALID_START, "end_time": VALID_START}, "invalid_time_range"),
                       ({"start_time": iso(NOW - timedelta(days=2)), "end_time": iso(NOW - timedelta(days=1))},
                        "invalid_time_range"),
                       ({"start_time": "9999-12-31T09:00:00Z", "end_time": "9999-12-31T10:00:00Z"},
                        "invalid_time_range")):
        check(send(client, "POST", time_off, w.practitioner_user, body), 422, code, f"time off {body}", failures)
    for reason in (1, True, ["x"], "x" * 1001, "x\x00", "\ud800"):
        check(send(client, "POST", time_off, w.practitioner_user,
                   {"start_time": VALID_START, "end_time": VALID_END, "reason": reason}), 400, "validation_error",
              f"reason={reason!r:.30}", failures)

    bulk = f"/v1/practitioners/{w.practitioner}/slots/bulk"
    item = {"start_time": VALID_START, "end_time": VALID_END}
    many = [{"start_time": iso(FUTURE + timedelta(minutes=10 * i)),
             "end_time": iso(FUTURE + timedelta(minutes=10 * (i + 1)))} for i in range(501)]
    for slots, label in ((many, "501 items"), ([], "no items"), (None, "null"), ("x", "a string"),
                         (item, "an object"), ([item, [item]], "a nested list"), ([1], "a number item")):
        check(send(client, "POST", bulk, w.practitioner_user, {"slots": slots}), 400, "validation_error", label,
              failures)
    for value, status, code in BAD_TIMES:
        response = send(client, "POST", bulk, w.practitioner_user,
                        {"slots": [item, {"start_time": value, "end_time": VALID_END}]})
        check(response, status, code, f"bulk start_time={value!r:.40}", failures)
        if response.status_code == 400 and response.get_json().get("errors") is not None and \
                [e["index"] for e in response.get_json()["errors"]] != [1]:
            failures.append(f"bulk start_time={value!r:.40}: errors {response.get_json()['errors']}")
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == before


def test_bad_ranges_cursors_and_directory_queries(client, admin, scene):
    """Dates, ranges, statuses, limits and forged cursors on every listing and the range delete."""
    w = scene.world
    before = snapshot(admin)
    failures: list[str] = []
    delete = f"/v1/practitioners/{w.practitioner}/slots"
    for query in ("from=2027-03-01&to=2028-04-04", "from=2027-03-01&to=2028-03-01", "from=2027-03-02&to=2027-03-01",
                  "from=2027-03-01", "to=2027-03-01", "", "from=2027-02-30&to=2027-03-01", "from=x&to=y",
                  "from=2027-03-01&to=2027-03-02&status=all", "from=2027-03-01&from=2027-03-02&to=2027-03-03"):
        check(send(client, "DELETE", f"{delete}?{query}", w.practitioner_user), 400, "validation_error",
              f"DELETE slots?{query}", failures)
    directory = "/v1/practitioners"
    cases = [("available_on=2027-02-30", 400, "validation_error"), ("available_on=2027-3-1", 400, "validation_error"),
             ("available_on=2027-03-01&tz=Mars/Base", 400, "validation_error"),
             ("tz=Nowhere/Land", 400, "validation_error"), ("specialty=" + "x" * 201, 400, "validation_error"),
             ("specialty=", 400, "validation_error"),
             ("specialty=%00", 400, "validation_error"), ("specialty=a&specialty=b", 400, "validation_error"),
             ("limit=0", 400, "validation_error"), ("limit=501", 400, "validation_error"),
             ("limit=ten", 400, "validation_error"), ("page=2", 400, "validation_error"),
             *[(f"cursor={cursor}", 400, "invalid_cursor") for cursor in FORGED_CURSORS]]
    for query, status, code in cases:
        check(send(client, "GET", f"{directory}?{query}", w.patient_user), status, code, f"GET {directory}?{query}",
              failures)
    # A real cursor of one listing is refused by every other.
    for i in range(3):
        make_slot(admin, scene.world, NOW + timedelta(days=20, hours=i))
    slots = f"/v1/practitioners/{w.practitioner}/slots"
    cursor = send(client, "GET", f"{slots}?limit=1", w.practitioner_user).get_json()["next_cursor"]
    moved = snapshot(admin)
    for query in (f"limit=1&status=all&cursor={cursor}", f"limit=1&date=2027-03-21&cursor={cursor}",
                  f"limit=1&from=2027-03-01&to=2027-03-31&cursor={cursor}"):
        check(send(client, "GET", f"{slots}?{query}", w.practitioner_user), 400, "invalid_cursor", query, failures)
    check(send(client, "GET", f"/v1/practitioners/{w.other_practitioner}/slots?cursor={cursor}", w.patient_user),
          400, "invalid_cursor", "another practitioner's listing", failures)
    check(send(client, "GET", f"{directory}?cursor={cursor}", w.patient_user), 400, "invalid_cursor",
          "a slot cursor in the directory", failures)
    assert failures == [], "\n".join(failures)
    assert snapshot(admin) == moved != before
