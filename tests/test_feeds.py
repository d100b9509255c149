"""Calendar feeds: a secret token per user, iCalendar parsed back with the icalendar library.

- POST /v1/me/calendar-token issues a token and absolute feed URLs; a new one
  revokes the old;
- each feed parses; it changes after booking and cancelling (STATUS:CANCELLED
  with a higher SEQUENCE, the same UID); times in UTC; the last 30 days and the
  future; the other party's name and nothing else personal;
- a wrong, revoked or foreign token and an unknown id are the same 404;
- only the token's hash is stored, and neither the app's log nor the server's
  output ever contains it.
"""

from __future__ import annotations

import hashlib
import signal
import urllib.request
from datetime import UTC, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import NOW, World, add_patient, assert_problem, bearer, make_slot, set_clock
from icalendar import Calendar
from test_observability import _serve


def issue(client, user_id: int) -> dict:
    response = client.post("/v1/me/calendar-token", headers=bearer(user_id))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def feed(client, url: str):
    """GETs a feed URL as a calendar app would: no bearer header."""
    parts = urlsplit(url)
    return client.get(parts.path, query_string=parts.query)


def parsed(client, url: str) -> list:
    response = feed(client, url)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/calendar"
    calendar = Calendar.from_ical(response.get_data())
    assert str(calendar["version"]) == "2.0" and calendar["prodid"]
    return list(calendar.walk("VEVENT"))


def names(admin, *user_ids: int) -> dict[int, str]:
    rows = admin.execute("SELECT id, name, email FROM users WHERE id = ANY(%s)", (list(user_ids),)).fetchall()
    return {row["id"]: (row["name"], row["email"]) for row in rows}


def test_issuing_a_token_returns_absolute_feed_urls(client, world: World, admin):
    patient = issue(client, world.patient_user)
    assert patient["token"].startswith("cal_") and len(patient["token"]) == 68
    assert patient["practitioner_feed_url"] is None
    assert patient["patient_feed_url"] == \
        f"http://localhost/v1/patients/{world.patient}/calendar.ics?token={patient['token']}"
    practitioner = issue(client, world.practitioner_user)
    assert patient["token"] != practitioner["token"] and practitioner["patient_feed_url"] is None
    assert urlsplit(practitioner["practitioner_feed_url"]).path == \
        f"/v1/practitioners/{world.practitioner}/calendar.ics"
    # A user with both profiles gets both feeds, with one token.
    admin.execute("INSERT INTO booking.patients (user_id) VALUES (%s)", (world.other_practitioner_user,))
    both = issue(client, world.other_practitioner_user)
    assert both["patient_feed_url"] and both["practitioner_feed_url"]
    assert parse_qs(urlsplit(both["patient_feed_url"]).query) == {"token": [both["token"]]}
    assert_problem(client.post("/v1/me/calendar-token", headers=bearer(world.stranger_user)), 403, "forbidden")
    assert_problem(client.post("/v1/me/calendar-token"), 401, "unauthorized")
    assert_problem(client.post("/v1/me/calendar-token", headers=bearer(world.patient_user), json={"x": 1}),
                   400, "validation_error")


def test_public_url_setting_makes_the_feed_urls(app, world: World):
    app.config["PUBLIC_URL"] = "https://booking.example.com/"
    token = issue(app.test_client(), world.patient_user)
    assert token["patient_feed_url"].startswith(f"https://booking.example.com/v1/patients/{world.patient}/")


def test_feeds_parse_and_follow_booking_and_cancelling(client, admin, world: World):
    patient_feed = issue(client, world.patient_user)["patient_feed_url"]
    practitioner_feed = issue(client, world.practitioner_user)["practitioner_feed_url"]
    assert parsed(client, patient_feed) == [] and parsed(client, practitioner_feed) == []

    slot = make_slot(admin, world, NOW + timedelta(days=2), minutes=45)
    booked = client.post("/v1/appointments", headers=bearer(world.patient_user),
                         json={"slot_id": slot["id"]}).get_json()
    [mine] = parsed(client, patient_feed)
    [theirs] = parsed(client, practitioner_feed)
    who = names(admin, world.practitioner_user, world.patient_user)
    assert str(mine["uid"]) == str(theirs["uid"]) == f"appointment-{booked['id']}@booking.medbook"
    assert mine.decoded("dtstart") == NOW + timedelta(days=2)
    assert mine.decoded("dtend") == NOW + timedelta(days=2, minutes=45)
    assert mine.decoded("dtstart").tzinfo is not None and mine.decoded("dtstart").utcoffset() == timedelta(0)
    assert "DTSTART:20270303T120000Z" in feed(client, patient_feed).get_data(as_text=True)
    assert (str(mine["status"]), int(mine["sequence"])) == ("CONFIRMED", 0)
    assert str(mine["summary"]) == f"Appointment with {who[world.practitioner_user][0]}"
    assert str(theirs["summary"]) == f"Appointment: {who[world.patient_user][0]}"

    client.post(f"/v1/appointments/{booked['id']}/cancel", headers=bearer(world.practitioner_user),
                json={"reason": "sprained ankle, private"})
    [cancelled] = parsed(client, patient_feed)
    assert str(cancelled["uid"]) == str(mine["uid"])
    assert (str(cancelled["status"]), int(cancelled["sequence"])) == ("CANCELLED", 1)
    assert int(cancelled["sequence"]) > int(mine["sequence"])

    # Nothing else personal: no reason, no email, not the feed owner's own name.
    for url, own in ((patient_feed, world.patient_user), (practitioner_feed, world.practitioner_user)):
        text = feed(client, url).get_data(as_text=True)
        assert "sprained" not in text and "@example.test" not in text and who[own][0] not in text


def test_feed_covers_the_last_30_days_and_the_future(client, admin, world: World):
    url = issue(client, world.practitioner_user)["practitioner_feed_url"]
    first = make_slot(admin, world, NOW + timedelta(days=1))
    second = make_slot(admin, world, NOW + timedelta(days=20))
    for slot in (first, second):
        admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot["id"]))
    set_clock(admin, NOW + timedelta(days=31))      # the first started 30 days ago (to the hour): still there
    assert len(parsed(client, url)) == 2
    set_clock(admin, NOW + timedelta(days=31, minutes=1))
    assert [e.decoded("dtstart") for e in parsed(client, url)] == [NOW + timedelta(days=20)]


def test_a_new_token_revokes_the_old_one(client, world: World):
    old = issue(client, world.patient_user)
    new = issue(client, world.patient_user)
    assert_problem(feed(client, old["patient_feed_url"]), 404, "not_found")
    assert feed(client, new["patient_feed_url"]).status_code == 200


def test_wrong_tokens_and_unknown_ids_are_the_same_404(client, admin, world: World):
    mine = issue(client, world.patient_user)
    other = issue(client, world.other_patient_user)
    base = f"/v1/patients/{world.patient}/calendar.ics"
    last = mine["token"][-1]
    one_off = mine["token"][:-1] + ("1" if last == "0" else "0")  # never the token itself
    answers = [
        client.get(base, query_string={"token": other["token"]}),                 # someone else's token
        client.get(base, query_string={"token": one_off}),                        # one character off
        client.get(base, query_string={"token": ""}),
        client.get(base),                                                          # no token at all
        client.get("/v1/patients/999999/calendar.ics", query_string={"token": mine["token"]}),  # no such patient
        client.get(f"/v1/practitioners/{world.practitioner}/calendar.ics",         # a practitioner without one
                   query_string={"token": mine["token"]}),
        client.get(f"/v1/patients/{world.patient}/calendar.ics", query_string={"token": mine["token"]},
                   headers=bearer(world.other_patient_user)),                       # a bearer header changes nothing
    ]
    bodies = []
    for response in answers[:-1]:
        body = assert_problem(response, 404, "not_found")
        bodies.append({k: v for k, v in body.items() if k != "request_id"})
    assert all(body == bodies[0] for body in bodies)
    assert answers[-1].status_code == 200
    assert_problem(client.get(base, query_string={"token": mine["token"], "x": "1"}), 400, "validation_error")
    assert_problem(client.get("/v1/patients/abc/calendar.ics", query_string={"token": "x"}), 400,
                   "validation_error")


def test_only_the_hash_of_the_token_is_stored(client, admin, world: World):
    token = issue(client, world.patient_user)["token"]
    row = admin.execute("SELECT * FROM booking.calendar_tokens WHERE user_id = %s", (world.patient_user,)).fetchone()
    assert bytes(row["token_hash"]) == hashlib.sha256(token.encode()).digest()
    dump = admin.execute("SELECT string_agg(t::text, ' ') AS s FROM booking.calendar_tokens t").fetchone()["s"]
    assert token not in dump and token[4:] not in dump


def test_feed_tokens_are_not_logged(db, admin, world: World, tmp_path):
    """Through the real server (the production server, JSON request log): its whole output never holds a token."""
    server, base = _serve(db, tmp_path)
    try:
        request = urllib.request.Request(f"{base}/v1/me/calendar-token", method="POST",  # noqa: S310
                                         headers={**bearer(world.patient_user)})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            import json

            issued = json.loads(response.read())
        good = issued["patient_feed_url"]
        with urllib.request.urlopen(good, timeout=10) as response:  # noqa: S310
            assert response.status == 200
        wrong = good.replace(issued["token"], "cal_" + "f" * 64)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(wrong, timeout=10)  # noqa: S310
        assert refused.value.code == 404
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0].decode()
    assert "/v1/patients/<patient_id>/calendar.ics" in output          # the feed requests were logged
    assert issued["token"] not in output and issued["token"][4:] not in output and "f" * 64 not in output
    assert "token=" not in output


def test_feed_dates_are_utc_in_the_ics(client, admin, world: World):
    url = issue(client, world.patient_user)["patient_feed_url"]
    slot = admin.execute("SELECT * FROM create_slot(%s, %s, '2027-03-05 10:00+05:30', '2027-03-05 10:30+05:30')",
                         (world.practitioner_user, world.practitioner)).fetchone()
    admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot["id"]))
    text = feed(client, url).get_data(as_text=True)
    assert "DTSTART:20270305T043000Z" in text and "DTEND:20270305T050000Z" in text
    [event] = parsed(client, url)
    assert event.decoded("dtstart").astimezone(UTC).hour == 4


def test_feed_for_a_patient_lists_only_their_appointments(client, admin, world: World):
    _, third_patient = add_patient(admin)
    url = issue(client, world.patient_user)["patient_feed_url"]
    for n, user in enumerate((world.patient_user, world.other_patient_user)):
        slot = make_slot(admin, world, NOW + timedelta(days=2, hours=n))
        admin.execute("SELECT * FROM book_slot(%s, %s)", (user, slot["id"]))
    assert len(parsed(client, url)) == 1
    assert third_patient
