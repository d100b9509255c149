"""The date filter on daylight-saving change days returns exactly that local date's slots.

Europe/London, 2027: clocks go forward on Sunday 28 March (the day has 23
hours: 00:00 GMT to 23:00 UTC) and back on Sunday 31 October (25 hours:
23:00 UTC the day before to 00:00 UTC the day after).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from conftest import bearer, make_slot


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
