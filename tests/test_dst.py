"""Daylight-saving days: the date filter returns exactly that local date's slots, and
publishing a weekly schedule keeps wall-clock times, skips the gap and publishes the
repeated hour once, at its first instant.

Europe/London, 2027: clocks go forward on Sunday 28 March (01:00 GMT becomes 02:00
BST; the day has 23 hours: 00:00 GMT to 23:00 UTC) and back on Sunday 31 October
(02:00 BST becomes 01:00 GMT; 25 hours: 23:00 UTC the day before to 00:00 UTC the day
after). America/New_York, 2027: forward on Sunday 14 March (02:00 EST becomes 03:00
EDT), back on Sunday 7 November (02:00 EDT becomes 01:00 EST).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import assert_problem, bearer, invariant_violations, make_slot
from psycopg.types.json import Jsonb


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


SPRING = date(2027, 3, 28)
SPRING_INSIDE = [utc(2027, 3, 28, 0, 0), utc(2027, 3, 28, 0, 30), utc(2027, 3, 28, 1, 0),
                 utc(2027, 3, 28, 22, 30)]                        # 00:00 GMT .. 23:30 BST
SPRING_OUTSIDE = [utc(2027, 3, 27, 23, 30), utc(2027, 3, 28, 23, 0), utc(2027, 3, 28, 23, 30)]

AUTUMN = date(2027, 10, 31)
AUTUMN_INSIDE = [utc(2027, 10, 30, 23, 0), utc(2027, 10, 31, 0, 30), utc(2027, 10, 31, 1, 30),
                 utc(2027, 10, 31, 23, 30)]                       # 00:00 BST, 01:30 BST, 01:30 GMT, 23:30 GMT
AUTUMN_OUTSIDE = [utc(2027, 10, 30, 22, 30), utc(2027, 11, 1, 0, 0), utc(2027, 11, 1, 0, 30)]


@pytest.fixture
def london(admin, world):
    admin.execute("SELECT set_booking_settings(%s, %s, 'Europe/London', NULL)",
                  (world.practitioner_user, world.practitioner))
    return world


def slots_on(conn, world, day, tz=None):
    rows = conn.execute("SELECT * FROM list_available_slots(%s, %s, %s, %s)",
                        (world.patient_user, world.practitioner, day, tz)).fetchall()
    return [r["start_time"] for r in rows]


@pytest.mark.parametrize(("day", "inside", "outside"), [
    (SPRING, SPRING_INSIDE, SPRING_OUTSIDE),
    (AUTUMN, AUTUMN_INSIDE, AUTUMN_OUTSIDE),
])
def test_dst_day_in_the_practitioners_zone(api_conn, london, day, inside, outside):
    for start in inside + outside:
        make_slot(api_conn, london, start, minutes=30)
    assert slots_on(api_conn, london, day) == sorted(inside)
    assert slots_on(api_conn, london, day, "Europe/London") == sorted(inside)


def test_explicit_zone_overrides_the_practitioners(api_conn, london):
    for start in SPRING_INSIDE + SPRING_OUTSIDE:
        make_slot(api_conn, london, start, minutes=30)
    # In UTC the 28th runs 00:00-24:00 UTC, so it also holds 23:00 and 23:30 UTC.
    assert slots_on(api_conn, london, SPRING, "UTC") == sorted(
        [s for s in SPRING_INSIDE + SPRING_OUTSIDE if s.date() == SPRING])


def test_dst_day_over_http(client, api_conn, london):
    for start in AUTUMN_INSIDE + AUTUMN_OUTSIDE:
        make_slot(api_conn, london, start, minutes=30)
    response = client.get(f"/v1/practitioners/{london.practitioner}/slots?date={AUTUMN.isoformat()}",
                          headers=bearer(london.patient_user))
    assert response.status_code == 200
    starts = [datetime.fromisoformat(s["start_time"]) for s in response.get_json()["data"]]
    assert starts == sorted(AUTUMN_INSIDE)
    response = client.get(f"/v1/practitioners/{london.practitioner}/slots?date={SPRING.isoformat()}"
                          "&tz=America/New_York", headers=bearer(london.patient_user))
    assert response.status_code == 200 and response.get_json()["data"] == []


# Publishing a weekly schedule across the changes ----------------------------------

EARLY_SUNDAY = {"weekday": 7, "start": "00:00", "end": "04:00", "slot_minutes": 30}


def published(admin, api_conn, world, zone: str, day: date, rules: list[dict]) -> tuple[dict, list[tuple]]:
    """Publishes rules valid on `day` only, in `zone`; returns the result and the (start, end) instants."""
    api_conn.execute("SELECT * FROM set_booking_settings(%s, %s, %s, NULL)",
                     (world.practitioner_user, world.practitioner, zone))
    api_conn.execute("SELECT * FROM set_schedule(%s, %s, %s)", (world.practitioner_user, world.practitioner, Jsonb(
        [{**rule, "valid_from": day.isoformat(), "valid_until": day.isoformat()} for rule in rules])))
    result = api_conn.execute("SELECT * FROM publish_schedule(%s, %s, %s)",
                              (world.practitioner_user, world.practitioner, day)).fetchone()
    rows = admin.execute("SELECT start_time, end_time FROM booking.availability_slots WHERE practitioner_id = %s "
                         "ORDER BY start_time", (world.practitioner,)).fetchall()
    return result, [(r["start_time"], r["end_time"]) for r in rows]


def half_hours(*starts: datetime, minutes: int = 30) -> list[tuple]:
    return [(start, start + timedelta(minutes=minutes)) for start in starts]


@pytest.mark.parametrize(("zone", "day", "created", "skipped", "instants"), [
    # London forward: 01:00 and 01:30 do not exist; 02:00 BST is 01:00 UTC.
    ("Europe/London", date(2027, 3, 28), 6, 2, half_hours(
        utc(2027, 3, 28, 0, 0), utc(2027, 3, 28, 0, 30),
        utc(2027, 3, 28, 1, 0), utc(2027, 3, 28, 1, 30), utc(2027, 3, 28, 2, 0), utc(2027, 3, 28, 2, 30))),
    # London back: 01:00 and 01:30 happen twice; each is published once, in BST. The repeated
    # hour (01:00-02:00 GMT, 01:00-02:00 UTC) stays empty; 02:00 GMT is 02:00 UTC.
    ("Europe/London", date(2027, 10, 31), 8, 0, half_hours(
        utc(2027, 10, 30, 23, 0), utc(2027, 10, 30, 23, 30), utc(2027, 10, 31, 0, 0), utc(2027, 10, 31, 0, 30),
        utc(2027, 10, 31, 2, 0), utc(2027, 10, 31, 2, 30), utc(2027, 10, 31, 3, 0), utc(2027, 10, 31, 3, 30))),
    # New York forward: 02:00 and 02:30 do not exist; 03:00 EDT is 07:00 UTC.
    ("America/New_York", date(2027, 3, 14), 6, 2, half_hours(
        utc(2027, 3, 14, 5, 0), utc(2027, 3, 14, 5, 30), utc(2027, 3, 14, 6, 0), utc(2027, 3, 14, 6, 30),
        utc(2027, 3, 14, 7, 0), utc(2027, 3, 14, 7, 30))),
    # New York back: 01:00 and 01:30 published once, in EDT (05:00, 05:30 UTC); 02:00 EST is 07:00 UTC.
    ("America/New_York", date(2027, 11, 7), 8, 0, half_hours(
        utc(2027, 11, 7, 4, 0), utc(2027, 11, 7, 4, 30), utc(2027, 11, 7, 5, 0), utc(2027, 11, 7, 5, 30),
        utc(2027, 11, 7, 7, 0), utc(2027, 11, 7, 7, 30), utc(2027, 11, 7, 8, 0), utc(2027, 11, 7, 8, 30))),
], ids=["london-spring", "london-autumn", "new-york-spring", "new-york-autumn"])
def test_publish_across_a_change(admin, api_conn, world, zone, day, created, skipped, instants):
    result, slots = published(admin, api_conn, world, zone, day, [EARLY_SUNDAY])
    assert result == {"created": created, "skipped": skipped}
    assert slots == instants
    # Again: nothing new, everything skipped.
    again = api_conn.execute("SELECT * FROM publish_schedule(%s, %s, %s)",
                             (world.practitioner_user, world.practitioner, day)).fetchone()
    assert again == {"created": 0, "skipped": created + skipped}
    assert invariant_violations(admin) == []


@pytest.mark.parametrize(("zone", "sundays", "nine_utc"), [
    ("Europe/London", [date(2027, 3, 21), date(2027, 3, 28), date(2027, 10, 24), date(2027, 10, 31)],
     [utc(2027, 3, 21, 9), utc(2027, 3, 28, 8), utc(2027, 10, 24, 8), utc(2027, 10, 31, 9)]),
    ("America/New_York", [date(2027, 3, 7), date(2027, 3, 14), date(2027, 10, 31), date(2027, 11, 7)],
     [utc(2027, 3, 7, 14), utc(2027, 3, 14, 13), utc(2027, 10, 31, 13), utc(2027, 11, 7, 14)]),
])
def test_nine_oclock_stays_nine_oclock(admin, api_conn, world, zone, sundays, nine_utc):
    """The wall clock is kept; the UTC instant moves by the hour the clocks moved."""
    api_conn.execute("SELECT * FROM set_booking_settings(%s, %s, %s, NULL)",
                     (world.practitioner_user, world.practitioner, zone))
    api_conn.execute("SELECT * FROM set_schedule(%s, %s, %s)", (world.practitioner_user, world.practitioner, Jsonb(
        [{"weekday": 7, "start": "09:00", "end": "09:30", "slot_minutes": 30}])))
    result = api_conn.execute("SELECT * FROM publish_schedule(%s, %s, %s)",
                              (world.practitioner_user, world.practitioner, date(2027, 11, 30))).fetchone()
    assert result["skipped"] == 0
    rows = admin.execute("SELECT start_time FROM booking.availability_slots WHERE practitioner_id = %s "
                         "AND (start_time AT TIME ZONE %s)::date = ANY(%s) ORDER BY start_time",
                         (world.practitioner, zone, sundays)).fetchall()
    assert [r["start_time"] for r in rows] == nine_utc


def test_a_slot_running_into_the_gap_pushes_the_next_one_out(admin, api_conn, world):
    """40-minute slots from 00:00 on London's spring day: 00:40 GMT runs to 01:20 UTC (02:20 BST),
    so the 02:00 BST slot (01:00 UTC) would overlap it and is skipped; 01:20 does not exist."""
    result, slots = published(admin, api_conn, world, "Europe/London", date(2027, 3, 28),
                              [{"weekday": 7, "start": "00:00", "end": "03:00", "slot_minutes": 40}])
    assert result == {"created": 2, "skipped": 2}
    assert slots == half_hours(utc(2027, 3, 28, 0, 0), utc(2027, 3, 28, 0, 40), minutes=40)



def test_publish_dst_day_over_http(client, admin, api_conn, world):
    api_conn.execute("SELECT * FROM set_booking_settings(%s, %s, 'America/New_York', NULL)",
                     (world.practitioner_user, world.practitioner))
    headers = bearer(world.practitioner_user)
    rules = {"rules": [{**EARLY_SUNDAY, "valid_from": "2027-11-07", "valid_until": "2027-11-07"}]}
    assert client.put(f"/v1/practitioners/{world.practitioner}/schedule", json=rules,
                      headers=headers).status_code == 200
    response = client.post(f"/v1/practitioners/{world.practitioner}/schedule/publish",
                           json={"through": "2027-11-07"}, headers=headers)
    assert response.status_code == 200 and response.get_json() == {"created": 8, "skipped": 0}
    listed = client.get(f"/v1/practitioners/{world.practitioner}/slots?date=2027-11-07", headers=headers)
    assert [s["start_time"] for s in listed.get_json()["data"]] == [
        "2027-11-07T04:00:00+00:00", "2027-11-07T04:30:00+00:00", "2027-11-07T05:00:00+00:00",
        "2027-11-07T05:30:00+00:00", "2027-11-07T07:00:00+00:00", "2027-11-07T07:30:00+00:00",
        "2027-11-07T08:00:00+00:00", "2027-11-07T08:30:00+00:00"]
    assert_problem(client.post(f"/v1/practitioners/{world.practitioner}/schedule/publish",
                               json={"through": "2029-11-07"}, headers=headers), 422, "invalid_time_range")
