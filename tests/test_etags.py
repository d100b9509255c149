"""Optimistic concurrency: strong ETags on slots and settings, If-Match on their changes.

A stale tag is 412 precondition_failed and changes nothing; two editors who
read the same version race and exactly one of them wins, also when the first
of them creates the settings row. Without If-Match, changes are unconditional.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest
from conftest import NOW, add_practitioner, api_connect, assert_problem, bearer, iso, make_slot, sqlstate

START = NOW + timedelta(days=3)


def times(start, minutes=30) -> dict:
    return {"start_time": iso(start), "end_time": iso(start + timedelta(minutes=minutes))}


def slot_row(admin, slot_id: int) -> dict | None:
    return admin.execute("SELECT * FROM booking.availability_slots WHERE id = %s", (slot_id,)).fetchone()


def test_slot_etag_changes_with_every_change(client, admin, world):
    created = client.post(f"/v1/practitioners/{world.practitioner}/slots", json=times(START),
                          headers=bearer(world.practitioner_user))
    slot_id = created.get_json()["id"]
    assert created.headers["ETag"] == '"1"'
    path = f"/v1/slots/{slot_id}"
    read = client.get(path, headers=bearer(world.patient_user))
    assert read.headers["ETag"] == '"1"'
    moved = client.patch(path, json=times(START + timedelta(hours=1)),
                         headers={**bearer(world.practitioner_user), "If-Match": '"1"'})
    assert moved.status_code == 200 and moved.headers["ETag"] == '"2"'
    assert client.get(path, headers=bearer(world.patient_user)).headers["ETag"] == '"2"'
    booked = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot_id)).fetchone()
    assert client.get(path, headers=bearer(world.patient_user)).headers["ETag"] == '"3"'
    admin.execute("SELECT cancel_appointment(%s, %s)", (world.patient_user, booked["id"]))
    assert client.get(path, headers=bearer(world.patient_user)).headers["ETag"] == '"4"'


def test_a_stale_tag_is_412_and_changes_nothing(client, admin, world):
    slot = make_slot(admin, world, START)
    path = f"/v1/slots/{slot['id']}"
    headers = bearer(world.practitioner_user)
    # Tab one moves the slot; tab two still holds "1".
    assert client.patch(path, json=times(START + timedelta(hours=2)),
                        headers={**headers, "If-Match": '"1"'}).status_code == 200
    before = slot_row(admin, slot["id"])
    body = assert_problem(client.patch(path, json=times(START + timedelta(hours=4)),
                                       headers={**headers, "If-Match": '"1"'}), 412, "precondition_failed")
    assert "hint" in body
    assert_problem(client.delete(path, headers={**headers, "If-Match": '"1"'}), 412, "precondition_failed")
    assert slot_row(admin, slot["id"]) == before
    # With the current tag, and without any, the change goes through.
    assert client.delete(path, headers={**headers, "If-Match": '"2"'}).status_code == 204
    other = make_slot(admin, world, START + timedelta(days=1))
    assert client.patch(f"/v1/slots/{other['id']}", json=times(START + timedelta(days=1, hours=1)),
                        headers=headers).status_code == 200
    assert client.delete(f"/v1/slots/{other['id']}", headers=headers).status_code == 204


def test_a_booking_makes_the_tag_stale(client, admin, world):
    """The practitioner read the slot; a patient booked it; the precondition fails before slot_booked."""
    slot = make_slot(admin, world, START)
    tag = client.get(f"/v1/slots/{slot['id']}", headers=bearer(world.practitioner_user)).headers["ETag"]
    admin.execute("SELECT book_slot(%s, %s)", (world.patient_user, slot["id"]))
    headers = {**bearer(world.practitioner_user), "If-Match": tag}
    assert_problem(client.patch(f"/v1/slots/{slot['id']}", json=times(START + timedelta(hours=1)), headers=headers),
                   412, "precondition_failed")
    assert_problem(client.delete(f"/v1/slots/{slot['id']}", headers=headers), 412, "precondition_failed")
    fresh = client.get(f"/v1/slots/{slot['id']}", headers=bearer(world.practitioner_user)).headers["ETag"]
    assert_problem(client.delete(f"/v1/slots/{slot['id']}", headers={**headers, "If-Match": fresh}),
                   409, "slot_booked")


@pytest.mark.parametrize("value, status", [
    ('"1"', 200), ("*", 200), ('"7", "1"', 200), ('"7","1"', 200), (' "1" ', 200),
    ('"2"', 412), ('W/"1"', 412), ('"abc"', 412), ('""', 412), ('"1x"', 412), ('W/"1", "3"', 412),
    ("1", 400), ('"1', 400), ('"1",', 400), ('"1" "2"', 400), ("", 400), ('*, "1"', 400), ("W/1", 400),
    (",", 400), ('"a"b"', 400),
])
def test_if_match_syntax(client, admin, world, value, status):
    slot = make_slot(admin, world, START)
    before = slot_row(admin, slot["id"])
    response = client.patch(f"/v1/slots/{slot['id']}", json=times(START + timedelta(hours=1)),
                            headers={**bearer(world.practitioner_user), "If-Match": value})
    assert response.status_code == status, response.get_data(as_text=True)
    if status != 200:
        assert slot_row(admin, slot["id"]) == before


def test_settings_etag_and_if_match(client, admin, world):
    path = f"/v1/practitioners/{world.practitioner}/settings"
    headers = bearer(world.practitioner_user)
    assert client.get(path, headers=bearer(world.patient_user)).headers["ETag"] == '"0"'
    assert_problem(client.patch(path, json={"time_zone": "Europe/London"}, headers={**headers, "If-Match": '"1"'}),
                   412, "precondition_failed")
    assert admin.execute("SELECT count(*) AS n FROM booking.practitioner_booking_settings").fetchone()["n"] == 0
    created = client.patch(path, json={"time_zone": "Europe/London"}, headers={**headers, "If-Match": '"0"'})
    assert created.status_code == 200 and created.headers["ETag"] == '"1"'
    assert_problem(client.patch(path, json={"cancellation_notice_minutes": 60},
                                headers={**headers, "If-Match": '"0"'}), 412, "precondition_failed")
    changed = client.patch(path, json={"cancellation_notice_minutes": 60}, headers={**headers, "If-Match": '"1"'})
    assert changed.status_code == 200 and changed.headers["ETag"] == '"2"'
    assert changed.get_json() == {"practitioner_id": world.practitioner, "time_zone": "Europe/London",
                                  "cancellation_notice_minutes": 60}
    assert client.get(path, headers=headers).headers["ETag"] == '"2"'
    unconditional = client.patch(path, json={"time_zone": "UTC"}, headers=headers)
    assert unconditional.status_code == 200 and unconditional.headers["ETag"] == '"3"'
    # Validation comes first: a bad value with a stale tag is a 400.
    assert_problem(client.patch(path, json={"time_zone": "Mars/Base"}, headers={**headers, "If-Match": '"1"'}),
                   400, "validation_error")


def test_sql_if_match(api_conn, admin, world):
    slot = make_slot(admin, world, START)
    with sqlstate("MBP01"):
        api_conn.execute("SELECT * FROM update_slot(%s, %s, %s, NULL, '{2,3}')",
                         (world.practitioner_user, slot["id"], START + timedelta(hours=1)))
    with sqlstate("MBP01"):
        api_conn.execute("SELECT * FROM delete_slot(%s, %s, '{}')", (world.practitioner_user, slot["id"]))
    moved = api_conn.execute("SELECT * FROM update_slot(%s, %s, %s, %s, p_if_match => '{1}')",
                             (world.practitioner_user, slot["id"], START + timedelta(hours=1),
                              START + timedelta(hours=1, minutes=30))).fetchone()
    assert moved["version"] == 2
    assert api_conn.execute("SELECT version FROM get_slot(%s, %s)", (world.patient_user, slot["id"])).fetchone() == {
        "version": 2}
    settings = api_conn.execute("SELECT * FROM get_booking_settings(%s, %s)",
                                (world.patient_user, world.practitioner)).fetchone()
    assert settings["version"] == 0
    with sqlstate("MBP01"):
        api_conn.execute("SELECT * FROM set_booking_settings(%s, %s, 'UTC', NULL, '{1}')",
                         (world.practitioner_user, world.practitioner))
    # Not the owner, or no such slot: those answers come before the precondition.
    with sqlstate("MB403"):
        api_conn.execute("SELECT * FROM delete_slot(%s, %s, '{9}')", (world.other_practitioner_user, slot["id"]))
    with sqlstate("MB404"):
        api_conn.execute("SELECT * FROM delete_slot(%s, 999999, '{9}')", (world.practitioner_user,))


def race(db, statements: list[tuple[str, tuple]]) -> list[str]:
    connections = [api_connect(db) for _ in statements]
    barrier = threading.Barrier(len(statements))
    outcomes = [""] * len(statements)

    def run(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            connections[i].execute(*statements[i]).fetchall()
            outcomes[i] = "ok"
        except psycopg.Error as exc:
            outcomes[i] = exc.sqlstate

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(statements))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for conn in connections:
        conn.close()
    return outcomes


def test_two_editors_with_one_version_one_wins(db, admin, world):
    for round_no in range(8):
        slot = make_slot(admin, world, START + timedelta(days=round_no))
        edits = [("SELECT * FROM update_slot(%s, %s, NULL, %s, '{1}')",
                  (world.practitioner_user, slot["id"], START + timedelta(days=round_no, minutes=m)))
                 for m in (40, 50, 60)]
        edits.append(("SELECT * FROM delete_slot(%s, %s, '{1}')", (world.practitioner_user, slot["id"])))
        outcomes = race(db, edits)
        assert outcomes.count("ok") == 1, outcomes
        # The losers read a newer version, or no slot at all when the delete won (404 tells them so).
        assert set(outcomes) - {"ok"} == ({"MB404"} if outcomes[-1] == "ok" else {"MBP01"}), outcomes
        row = slot_row(admin, slot["id"])
        assert (row is None) == (outcomes[-1] == "ok")
        assert row is None or row["version"] == 2


def test_two_editors_creating_the_settings_one_wins(db, admin, world):
    for _ in range(8):
        user, practitioner = add_practitioner(admin)
        outcomes = race(db, [("SELECT * FROM set_booking_settings(%s, %s, %s, NULL, '{0}')", (user, practitioner, zone))
                             for zone in ("Europe/London", "Europe/Paris", "Asia/Tokyo")])
        assert sorted(outcomes) == ["MBP01", "MBP01", "ok"], outcomes
        row = admin.execute("SELECT version FROM booking.practitioner_booking_settings WHERE practitioner_id = %s",
                            (practitioner,)).fetchone()
        assert row == {"version": 1}
