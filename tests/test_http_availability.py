"""The availability endpoints over HTTP: who am I, the directory, schedules and publishing,
time off, bulk slots, range deletes and paged slot listings. Every response is checked
against api/openapi.json by the client fixture."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conftest import NOW, add_practitioner, assert_problem, bearer, iso, make_slot

RULE = {"weekday": 1, "start": "09:00", "end": "12:00", "slot_minutes": 30}
STORED_RULE = {**RULE, "valid_from": None, "valid_until": None}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_me(client, admin, world):
    user = admin.execute("SELECT name, email FROM users WHERE id = %s", (world.patient_user,)).fetchone()
    response = client.get("/v1/me", headers=bearer(world.patient_user))
    assert response.status_code == 200
    assert response.get_json() == {"user_id": world.patient_user, "name": user["name"], "email": user["email"],
                                   "patient_id": world.patient, "practitioner_id": None}
    me = client.get("/v1/me", headers=bearer(world.practitioner_user)).get_json()
    assert (me["patient_id"], me["practitioner_id"]) == (None, world.practitioner)
    assert_problem(client.get("/v1/me"), 401, "unauthorized")
    assert_problem(client.get("/v1/me?x=1", headers=bearer(world.patient_user)), 400, "validation_error")


def test_directory_and_entry(client, admin, api_conn, world):
    first = make_slot(api_conn, world, NOW + timedelta(days=2), practitioner="other_practitioner")
    make_slot(api_conn, world, NOW + timedelta(days=3))
    headers = bearer(world.patient_user)
    response = client.get("/v1/practitioners", headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert [p["id"] for p in body["data"]] == [world.other_practitioner, world.practitioner]
    assert body["next_cursor"] is None
    entry = body["data"][0]
    assert set(entry) == {"id", "name", "specialty", "bio", "time_zone", "next_available_start"}
    assert entry["next_available_start"] == iso(first["start_time"])
    assert client.get(f"/v1/practitioners/{world.other_practitioner}", headers=headers).get_json() == entry

    page = client.get("/v1/practitioners?limit=1", headers=headers).get_json()
    assert [p["id"] for p in page["data"]] == [world.other_practitioner] and page["next_cursor"]
    rest = client.get(f"/v1/practitioners?limit=1&cursor={page['next_cursor']}", headers=headers).get_json()
    assert [p["id"] for p in rest["data"]] == [world.practitioner] and rest["next_cursor"] is None

    on_day = client.get(f"/v1/practitioners?available_on={(NOW + timedelta(days=3)).date()}&tz=UTC"
                        "&specialty=PHYSIOTHERAPY", headers=headers).get_json()
    assert [p["id"] for p in on_day["data"]] == [world.practitioner]
    assert client.get("/v1/practitioners?specialty=Physio", headers=headers).get_json() == {
        "data": [], "next_cursor": None}
    assert_problem(client.get("/v1/practitioners/999999", headers=headers), 404, "not_found")
    assert_problem(client.get(f"/v1/practitioners?limit=1&cursor={page['next_cursor']}&specialty=x",
                              headers=headers), 400, "invalid_cursor")


def test_schedule_put_get_and_publish(client, admin, world):
    headers = bearer(world.practitioner_user)
    path = f"/v1/practitioners/{world.practitioner}/schedule"
    response = client.put(path, json={"rules": [RULE, {**RULE, "weekday": 3, "valid_from": "2027-04-01"}]},
                          headers=headers)
    assert response.status_code == 200
    stored = [STORED_RULE, {**STORED_RULE, "weekday": 3, "valid_from": "2027-04-01"}]
    assert response.get_json() == {"rules": stored}
    assert client.get(path, headers=headers).get_json() == {"rules": stored}

    published = client.post(f"{path}/publish", json={"through": "2027-03-08"}, headers=headers)
    assert published.status_code == 200
    # Monday 1 March 09:00-12:00 has started by 12:00 (6 skipped); Monday 8 March has 6.
    assert published.get_json() == {"created": 6, "skipped": 6}
    again = client.post(f"{path}/publish", json={"through": "2027-03-08"}, headers=headers)
    assert again.get_json() == {"created": 0, "skipped": 12}
    slots = client.get(f"/v1/practitioners/{world.practitioner}/slots", headers=headers).get_json()["data"]
    assert [s["start_time"] for s in slots] == [iso(utc(2027, 3, 8, 9) + timedelta(minutes=30 * i))
                                                for i in range(6)]

    assert client.put(path, json={"rules": []}, headers=headers).get_json() == {"rules": []}
    assert len(client.get(f"/v1/practitioners/{world.practitioner}/slots", headers=headers).get_json()["data"]) == 6


def test_schedule_refusals(client, world):
    headers = bearer(world.practitioner_user)
    path = f"/v1/practitioners/{world.practitioner}/schedule"
    assert_problem(client.put(path, json={"rules": [RULE, {**RULE, "start": "11:30", "end": "13:00"}]},
                              headers=headers), 422, "invalid_schedule")
    assert_problem(client.put(path, json={"rules": [{**RULE, "weekday": 8}]}, headers=headers),
                   400, "validation_error")
    assert_problem(client.put(path, json={"rules": [{**RULE, "end": "24:00"}]}, headers=headers),
                   400, "validation_error")
    assert_problem(client.put(path, json={"rules": [RULE]}, headers=bearer(world.patient_user)), 403, "forbidden")
    assert_problem(client.get(path, headers=bearer(world.other_practitioner_user)), 403, "forbidden")
    assert_problem(client.put("/v1/practitioners/999999/schedule", json={"rules": []}, headers=headers),
                   404, "not_found")
    assert_problem(client.post(f"{path}/publish", json={"through": "2027-02-28"}, headers=headers),
                   422, "invalid_time_range")
    assert_problem(client.post(f"{path}/publish", json={"through": "2027-03-08"},
                               headers=bearer(world.other_practitioner_user)), 403, "forbidden")
    assert client.get(path, headers=headers).get_json() == {"rules": []}


def test_time_off_round_trip(client, admin, api_conn, world):
    headers = bearer(world.practitioner_user)
    free = make_slot(api_conn, world, NOW + timedelta(days=2, hours=1))
    taken = make_slot(api_conn, world, NOW + timedelta(days=2, hours=2))
    api_conn.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, taken["id"]))
    path = f"/v1/practitioners/{world.practitioner}/time-off"
    body = {"start_time": iso(NOW + timedelta(days=2)), "end_time": iso(NOW + timedelta(days=3)),
            "reason": "Conference"}
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 201
    created = response.get_json()
    assert created == {"id": created["id"], "practitioner_id": world.practitioner, "start_time": body["start_time"],
                       "end_time": body["end_time"], "reason": "Conference", "removed_slots": 1,
                       "booked_slot_ids": [taken["id"]]}
    assert_problem(client.get(f"/v1/slots/{free['id']}", headers=headers), 404, "not_found")
    listed = client.get(path, headers=headers).get_json()
    assert listed == {"data": [{key: created[key] for key in ("id", "practitioner_id", "start_time", "end_time",
                                                              "reason")}]}
    assert_problem(client.get(path, headers=bearer(world.patient_user)), 403, "forbidden")
    deleted = client.delete(f"{path}/{created['id']}", headers=headers)
    assert deleted.status_code == 204 and deleted.get_data() == b""
    assert client.get(path, headers=headers).get_json() == {"data": []}
    assert_problem(client.delete(f"{path}/{created['id']}", headers=headers), 404, "not_found")
    assert_problem(client.post(path, json={**body, "end_time": body["start_time"]}, headers=headers),
                   422, "invalid_time_range")
    assert_problem(client.post(path, json={**body, "start_time": "2027-03-03T09:00:00"}, headers=headers),
                   400, "validation_error")


def test_bulk_slots(client, admin, world):
    headers = bearer(world.practitioner_user)
    path = f"/v1/practitioners/{world.practitioner}/slots/bulk"
    start = utc(2027, 3, 3, 9)
    items = [{"start_time": iso(start + timedelta(minutes=30 * i)),
              "end_time": iso(start + timedelta(minutes=30 * (i + 1)))} for i in range(4)]
    response = client.post(path, json={"slots": items}, headers=headers)
    assert response.status_code == 201
    data = response.get_json()["data"]
    assert [(s["start_time"], s["end_time"]) for s in data] == [(i["start_time"], i["end_time"]) for i in items]

    later = [{"start_time": iso(start + timedelta(days=1, minutes=30 * i)),
              "end_time": iso(start + timedelta(days=1, minutes=30 * (i + 1)))} for i in range(3)]
    clash = [later[0], {**later[1], "start_time": iso(start + timedelta(days=1, minutes=15))}, items[2],
             {"start_time": iso(NOW - timedelta(hours=2)), "end_time": iso(NOW - timedelta(hours=1))}, later[2]]
    before = admin.execute("SELECT count(*) AS n FROM availability_slots").fetchone()["n"]
    body = assert_problem(client.post(path, json={"slots": clash}, headers=headers), 409, "slot_overlap")
    assert [(e["index"], e["code"]) for e in body["errors"]] == [(1, "slot_overlap"), (2, "slot_overlap"),
                                                                (3, "slot_in_past")]
    assert all(e["detail"] for e in body["errors"])
    body = assert_problem(client.post(path, json={"slots": [clash[3], clash[1]]}, headers=headers),
                          422, "slot_in_past")
    assert [e["index"] for e in body["errors"]] == [0]  # 1 overlaps only item 0, which failed on its own
    unreadable = [later[0], {"start_time": "2027-03-04T09:00:00", "end_time": later[0]["end_time"]},
                  {"start_time": later[1]["start_time"]}, {**later[2], "room": 4}]
    body = assert_problem(client.post(path, json={"slots": unreadable}, headers=headers), 400, "validation_error")
    assert [(e["index"], e["code"]) for e in body["errors"]] == [(1, "validation_error"), (2, "validation_error"),
                                                                (3, "validation_error")]
    assert admin.execute("SELECT count(*) AS n FROM availability_slots").fetchone()["n"] == before
    assert_problem(client.post(path, json={"slots": items}, headers=bearer(world.patient_user)), 403, "forbidden")


def test_range_delete(client, api_conn, world):
    headers = bearer(world.practitioner_user)
    kept = make_slot(api_conn, world, utc(2027, 3, 10, 9))
    api_conn.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, kept["id"]))
    for hour in (10, 11):
        make_slot(api_conn, world, utc(2027, 3, 10, hour))
    outside = make_slot(api_conn, world, utc(2027, 3, 12, 9))
    path = f"/v1/practitioners/{world.practitioner}/slots"
    response = client.delete(f"{path}?from=2027-03-09&to=2027-03-11", headers=headers)
    assert response.status_code == 200
    assert response.get_json() == {"deleted": 2, "booked_slot_ids": [kept["id"]]}
    listed = client.get(f"{path}?status=all", headers=headers).get_json()["data"]
    assert [s["id"] for s in listed] == [kept["id"], outside["id"]]
    assert_problem(client.delete(f"{path}?from=2027-03-01&to=2028-04-04", headers=headers), 400, "validation_error")
    assert_problem(client.delete(f"{path}?from=2027-03-01", headers=headers), 400, "validation_error")
    assert_problem(client.delete(f"{path}?from=2027-03-01&to=2027-03-02", headers=bearer(world.patient_user)),
                   403, "forbidden")


def test_slot_listing_pages_statuses_and_windows(client, api_conn, world):
    headers = bearer(world.patient_user)
    mine = bearer(world.practitioner_user)
    made = [make_slot(api_conn, world, utc(2027, 3, 2 + day, 9)) for day in range(6)]
    appointment = api_conn.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, made[1]["id"])).fetchone()
    path = f"/v1/practitioners/{world.practitioner}/slots"
    ids, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(path + query, headers=headers).get_json()
        ids += [s["id"] for s in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids == [m["id"] for i, m in enumerate(made) if i != 1]
    every = client.get(f"{path}?status=all", headers=mine).get_json()["data"]
    assert [s.get("appointment_id") for s in every] == [None, appointment["id"], None, None, None, None]
    assert "appointment_id" not in every[0]
    booked = client.get(f"{path}?status=booked", headers=mine).get_json()
    assert [s["id"] for s in booked["data"]] == [made[1]["id"]] and booked["next_cursor"] is None
    for status in ("booked", "all"):
        assert_problem(client.get(f"{path}?status={status}", headers=headers), 403, "forbidden")
    window = client.get(f"{path}?from=2027-03-03&to=2027-03-05", headers=headers).get_json()["data"]
    assert [s["id"] for s in window] == [made[2]["id"], made[3]["id"]]
    assert_problem(client.get(f"{path}?date=2027-03-03&from=2027-03-03&to=2027-03-04", headers=headers),
                   400, "validation_error")
    assert_problem(client.get(f"{path}?from=2027-03-01&to=2027-04-01", headers=headers), 400, "validation_error")
    first = client.get(f"{path}?limit=2", headers=headers).get_json()["next_cursor"]
    assert_problem(client.get(f"{path}?limit=2&cursor={first[:-2]}", headers=headers), 400, "invalid_cursor")
    assert_problem(client.get(f"{path}?limit=2&status=all&cursor={first}", headers=mine), 400, "invalid_cursor")


def test_directory_over_many_practitioners_pages_without_gaps(client, admin, api_conn, world):
    people = [world.practitioner, world.other_practitioner]
    for i in range(12):
        user, pid = add_practitioner(admin)
        people.append(pid)
        if i % 3:
            api_conn.execute("SELECT * FROM create_slot(%s, %s, %s, %s)",
                             (user, pid, NOW + timedelta(hours=1 + i), NOW + timedelta(hours=1 + i, minutes=30)))
    headers = bearer(world.stranger_user)
    seen, cursor = [], None
    while True:
        page = client.get("/v1/practitioners?limit=5" + (f"&cursor={cursor}" if cursor else ""),
                          headers=headers).get_json()
        seen += [p["id"] for p in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(people) and len(seen) == len(set(seen))
    with_slots = [p for p in seen if p in people[2:] and (people.index(p) - 2) % 3]
    assert seen[:len(with_slots)] == with_slots
