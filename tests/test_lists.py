"""Appointment lists by status, a page at a time, and an appointment's history.

The pages are compared with what the table says the whole list is: for every
status and several page sizes, following next_cursor yields every appointment
exactly once, in order (ties on the start time broken by id), also while new
appointments are booked between pages. Cursors are signed: a changed one, or
one from another list or status, is a 400.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from conftest import NOW, assert_problem, bearer, make_slot, set_clock, sqlstate

from api import cursors

STATUSES = ("upcoming", "past", "cancelled", "all")


@pytest.fixture
def history(admin, world) -> None:
    """Twelve of the patient's appointments with both practitioners, some at the same instant:
    past and attended, past and booked, cancelled, rescheduled, upcoming."""
    set_clock(admin, NOW - timedelta(days=3))
    for day in range(6):
        for who in ("practitioner", "other_practitioner"):
            start = NOW - timedelta(days=2) + timedelta(days=day, hours=1)
            slot = make_slot(admin, world, start, practitioner=who)
            admin.execute("SELECT book_slot(%s, %s)", (world.patient_user, slot["id"]))
    rows = admin.execute("SELECT id, practitioner_id, start_time FROM booking.appointments ORDER BY id").fetchall()
    admin.execute("SELECT cancel_appointment(%s, %s, 'away')", (world.patient_user, rows[2]["id"]))
    admin.execute("SELECT cancel_appointment(%s, %s)", (world.patient_user, rows[9]["id"]))
    late = make_slot(admin, world, NOW + timedelta(days=6))
    admin.execute("SELECT reschedule_appointment(%s, %s, %s)", (world.patient_user, rows[10]["id"], late["id"]))
    set_clock(admin, NOW)
    for index, function in ((0, "complete_appointment"), (1, "mark_no_show")):
        practitioner_user = world.practitioner_user if rows[index]["practitioner_id"] == world.practitioner \
            else world.other_practitioner_user
        admin.execute(f"SELECT {function}(%s, %s)", (practitioner_user, rows[index]["id"]))
    # And somebody else's appointment, which no list of this patient may show.
    other = make_slot(admin, world, NOW + timedelta(days=1, minutes=30))
    admin.execute("SELECT book_slot(%s, %s)", (world.other_patient_user, other["id"]))


def expected(admin, column: str, owner: int, status: str) -> list[int]:
    where = {"upcoming": "status = 'booked' AND start_time > %(now)s",
             "past": "status <> 'cancelled' AND start_time <= %(now)s",
             "cancelled": "status = 'cancelled'", "all": "true"}[status]
    order = "start_time, id" if status == "upcoming" else "start_time DESC, id DESC"
    rows = admin.execute(f"SELECT id FROM booking.appointments WHERE {column} = %(owner)s AND {where} "
                         f"ORDER BY {order}", {"owner": owner, "now": NOW}).fetchall()
    return [r["id"] for r in rows]


def pages(client, path: str, user: int, status: str | None, limit: int | None) -> list[list[int]]:
    query = {k: v for k, v in (("status", status), ("limit", limit)) if v is not None}
    found, cursor = [], None
    for _ in range(100):
        params = {**query, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, query_string=params, headers=bearer(user))
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        found.append([a["id"] for a in body["data"]])
        assert len(body["data"]) <= (limit or 100)
        cursor = body["next_cursor"]
        if cursor is None:
            return found
        assert body["data"], "a next_cursor after an empty page"
    raise AssertionError("no last page")


@pytest.mark.parametrize("status", [None, *STATUSES])
@pytest.mark.parametrize("limit", [1, 2, 5, None])
def test_patient_pages_neither_skip_nor_repeat(client, admin, world, history, status, limit):
    found = pages(client, f"/v1/patients/{world.patient}/appointments", world.patient_user, status, limit)
    flat = [i for page in found for i in page]
    assert flat == expected(admin, "patient_id", world.patient, status or "upcoming")
    assert all(len(page) == limit for page in found[:-1]) if limit else len(found) == 1


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("limit", [1, 3, None])
def test_practitioner_pages_neither_skip_nor_repeat(client, admin, world, history, status, limit):
    found = pages(client, f"/v1/practitioners/{world.practitioner}/appointments", world.practitioner_user,
                  status, limit)
    assert [i for page in found for i in page] == expected(admin, "practitioner_id", world.practitioner, status)


def test_the_statuses_hold_what_they_say(client, admin, world, history):
    def statuses(status):
        body = client.get(f"/v1/patients/{world.patient}/appointments?status={status}",
                          headers=bearer(world.patient_user)).get_json()
        return {(a["status"], a["start_time"] > NOW.isoformat()) for a in body["data"]}

    assert statuses("upcoming") == {("booked", True)}
    assert statuses("past") == {("booked", False), ("completed", False), ("no_show", False)}
    assert {s for s, _ in statuses("cancelled")} == {"cancelled"}
    assert {s for s, _ in statuses("all")} == {"booked", "cancelled", "completed", "no_show"}
    assert len(expected(admin, "patient_id", world.patient, "all")) == 13  # 12 booked, one rescheduled to


def test_pages_stay_whole_while_appointments_are_booked_between_them(client, admin, world, history):
    path = f"/v1/patients/{world.patient}/appointments"
    before = expected(admin, "patient_id", world.patient, "all")
    seen, cursor, added = [], None, 0
    while True:
        response = client.get(path, query_string={"status": "all", "limit": 2, **({"cursor": cursor} if cursor
                                                                                     else {})},
                              headers=bearer(world.patient_user)).get_json()
        seen += [a["id"] for a in response["data"]]
        cursor = response["next_cursor"]
        if cursor is None:
            break
        # Between pages: one appointment at the very front of the order, one behind the cursor.
        added += 1
        for start in (NOW + timedelta(days=20 + added), NOW + timedelta(hours=2, minutes=35 * added)):
            slot = make_slot(admin, world, start)
            admin.execute("SELECT book_slot(%s, %s)", (world.patient_user, slot["id"]))
    assert len(seen) == len(set(seen)), "an appointment was repeated"
    assert set(before) <= set(seen), "an appointment that was there throughout was skipped"


def test_cursors_are_signed_and_bound_to_their_list(client, admin, world, history):
    path = f"/v1/patients/{world.patient}/appointments"
    headers = bearer(world.patient_user)
    cursor = client.get(f"{path}?status=all&limit=2", headers=headers).get_json()["next_cursor"]
    payload, mac = cursor.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged_payload = base64.urlsafe_b64encode(json.dumps(
        [data[0], data[1], data[2], data[3] + 1], separators=(",", ":")).encode()).rstrip(b"=").decode()
    bad = {
        "flipped character": cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:],
        "forged position": f"{forged_payload}.{mac}",
        "no signature": payload,
        "truncated": cursor[:-3],
        "empty signature": f"{payload}.",
        "garbage": "not-a-cursor",
        "two dots": f"{cursor}.x",
        "too long": "A" * 600,
        "non-ASCII": "caf\u00e9",
    }
    for label, value in bad.items():
        assert_problem(client.get(path, query_string={"status": "all", "cursor": value}, headers=headers),
                       400, "validation_error"), label
    # A good cursor, used with another status or for another list.
    assert_problem(client.get(path, query_string={"status": "past", "cursor": cursor}, headers=headers),
                   400, "validation_error")
    assert_problem(client.get(path, query_string={"cursor": cursor}, headers=headers), 400, "validation_error")
    other = f"/v1/practitioners/{world.practitioner}/appointments"
    assert_problem(client.get(other, query_string={"status": "all", "cursor": cursor},
                              headers=bearer(world.practitioner_user)), 400, "validation_error")
    # Signed with another server's secret.
    with client.application.app_context():
        client.application.config["JWT_SECRET"] = "another-secret-that-is-long-enough-0123456789abcdef"
        foreign = cursors.encode(f"patient:{world.patient}", "all", NOW, 1)
        client.application.config["JWT_SECRET"] = "test-secret-that-is-long-enough-for-hs256-0123456789"
    assert_problem(client.get(path, query_string={"status": "all", "cursor": foreign}, headers=headers),
                   400, "validation_error")
    assert client.get(path, query_string={"status": "all", "cursor": cursor}, headers=headers).status_code == 200


def test_sql_lists_refuse_bad_parameters(api_conn, world, history):
    cases = [({"p_status": "booked"}, "MB400"), ({"p_status": None}, "MB400"), ({"p_limit": 0}, "MB400"),
             ({"p_limit": 501}, "MB400"), ({"p_after_start_time": NOW}, "MB400"), ({"p_after_id": 3}, "MB400")]
    for function, owner, user in (("list_patient_appointments", world.patient, world.patient_user),
                                  ("list_practitioner_appointments", world.practitioner, world.practitioner_user)):
        for overrides, state in cases:
            args = {"p_limit": 100, "p_status": "all", "p_after_start_time": None, "p_after_id": None, **overrides}
            with sqlstate(state):
                api_conn.execute(f"SELECT * FROM {function}(%s, %s, %s, %s, %s, %s)",
                                 (user, owner, args["p_limit"], args["p_status"], args["p_after_start_time"],
                                  args["p_after_id"]))
    with sqlstate("MB403"):
        api_conn.execute("SELECT * FROM list_patient_appointments(%s, %s)", (world.other_patient_user, world.patient))
    with sqlstate("MB403"):
        api_conn.execute("SELECT * FROM list_practitioner_appointments(%s, %s)",
                         (world.patient_user, world.practitioner))


def test_history_is_for_the_patient_and_the_practitioner(client, admin, world, history):
    appointment = admin.execute("SELECT id, practitioner_id FROM booking.appointments WHERE status = 'cancelled' "
                                "AND practitioner_id = %s ORDER BY id LIMIT 1", (world.practitioner,)).fetchone()
    path = f"/v1/appointments/{appointment['id']}/history"
    for user in (world.patient_user, world.practitioner_user):
        response = client.get(path, headers=bearer(user))
        assert response.status_code == 200
        assert [(h["from_status"], h["to_status"]) for h in response.get_json()["data"]] == [
            (None, "booked"), ("booked", "cancelled")]
    for user in (world.other_patient_user, world.other_practitioner_user, world.stranger_user):
        body = assert_problem(client.get(path, headers=bearer(user)), 403, "forbidden")
        assert "data" not in body
    assert_problem(client.get("/v1/appointments/999999/history", headers=bearer(world.patient_user)),
                   404, "not_found")
    assert_problem(client.get(f"{path}?limit=1", headers=bearer(world.patient_user)), 400, "validation_error")
