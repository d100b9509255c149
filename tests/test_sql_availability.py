"""Time off, bulk slots and range deletes at the SQL level, called as medbook_api."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from conftest import NOW, invariant_violations, make_slot, set_clock, sqlstate


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def slot_rows(admin, practitioner):
    return admin.execute("SELECT id, start_time, end_time, status FROM booking.availability_slots "
                         "WHERE practitioner_id = %s ORDER BY start_time", (practitioner,)).fetchall()


def book(conn, world, slot_id):
    return conn.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot_id)).fetchone()


# Time off --------------------------------------------------------------------------

def time_off(conn, actor, practitioner, start, end, reason=None):
    return conn.execute("SELECT * FROM create_time_off(%s, %s, %s, %s, %s)",
                        (actor, practitioner, start, end, reason)).fetchone()


def test_time_off_deletes_available_slots_and_lists_booked_ones(api_conn, admin, world):
    day = utc(2027, 3, 10)
    slots = [make_slot(api_conn, world, day + timedelta(hours=h), minutes=60) for h in range(8, 14)]
    booked = book(api_conn, world, slots[2]["id"])  # 10:00
    other = make_slot(api_conn, world, day + timedelta(hours=10), practitioner="other_practitioner")
    created = time_off(api_conn, world.practitioner_user, world.practitioner,
                       day + timedelta(hours=9, minutes=30), day + timedelta(hours=12), "  dentist  ")
    assert created["practitioner_id"] == world.practitioner
    assert (created["start_time"], created["end_time"]) == (day + timedelta(hours=9, minutes=30),
                                                            day + timedelta(hours=12))
    assert created["reason"] == "dentist"
    # 09:00-10:00 and 11:00-12:00 overlap it and are gone; 10:00 is booked and kept; 08:00, 12:00, 13:00 stay.
    assert created["removed_slots"] == 2
    assert created["booked_slot_ids"] == [slots[2]["id"]]
    remaining = [r["id"] for r in slot_rows(admin, world.practitioner)]
    assert remaining == [slots[0]["id"], slots[2]["id"], slots[4]["id"], slots[5]["id"]]
    assert admin.execute("SELECT status FROM booking.appointments WHERE id = %s",
                         (booked["id"],)).fetchone()["status"] == "booked"
    assert [r["id"] for r in slot_rows(admin, world.other_practitioner)] == [other["id"]]
    assert invariant_violations(admin) == []


def test_time_off_leaves_started_slots_alone(api_conn, admin, world):
    running = make_slot(api_conn, world, NOW + timedelta(minutes=30), minutes=60)
    set_clock(admin, NOW + timedelta(minutes=45))
    created = time_off(api_conn, world.practitioner_user, world.practitioner, NOW, NOW + timedelta(days=1))
    assert created["removed_slots"] == 0 and created["booked_slot_ids"] == []
    assert [r["id"] for r in slot_rows(admin, world.practitioner)] == [running["id"]]


@pytest.mark.parametrize(("start", "end", "state"), [
    (NOW + timedelta(days=1), NOW + timedelta(days=1), "MBS05"),
    (NOW + timedelta(days=2), NOW + timedelta(days=1), "MBS05"),
    (NOW - timedelta(days=2), NOW - timedelta(days=1), "MBS05"),
    (NOW - timedelta(days=1), NOW, "MBS05"),
    (NOW + timedelta(days=740), NOW + timedelta(days=741), "MBS05"),
    (None, NOW + timedelta(days=1), "MB400"),
    (NOW, None, "MB400"),
])
def test_time_off_ranges(api_conn, admin, world, start, end, state):
    with sqlstate(state):
        time_off(api_conn, world.practitioner_user, world.practitioner, start, end)
    assert admin.execute("SELECT count(*) AS n FROM booking.time_off_periods").fetchone()["n"] == 0


def test_time_off_that_began_earlier_or_runs_for_years(api_conn, world):
    assert time_off(api_conn, world.practitioner_user, world.practitioner, NOW - timedelta(hours=3),
                    NOW + timedelta(hours=1))["removed_slots"] == 0
    assert time_off(api_conn, world.practitioner_user, world.practitioner, NOW + timedelta(days=30),
                    utc(2099, 1, 1))["id"]


def test_time_off_reason_and_who(api_conn, world):
    with sqlstate("MB400"):
        time_off(api_conn, world.practitioner_user, world.practitioner, NOW, NOW + timedelta(days=1), "x" * 1001)
    for actor in (world.other_practitioner_user, world.patient_user, world.stranger_user):
        with sqlstate("MB403"):
            time_off(api_conn, actor, world.practitioner, NOW, NOW + timedelta(days=1))
    with sqlstate("MB404"):
        time_off(api_conn, world.practitioner_user, 10**12, NOW, NOW + timedelta(days=1))
    with sqlstate("MB401"):
        time_off(api_conn, 10**12, world.practitioner, NOW, NOW + timedelta(days=1))
    assert time_off(api_conn, world.practitioner_user, world.practitioner, NOW, NOW + timedelta(days=1),
                    "   ")["reason"] is None


def test_list_and_delete_time_off(api_conn, admin, world):
    def listed(actor=world.practitioner_user):
        return [r["id"] for r in api_conn.execute("SELECT * FROM list_time_off(%s, %s)",
                                                  (actor, world.practitioner))]

    later = time_off(api_conn, world.practitioner_user, world.practitioner, NOW + timedelta(days=9),
                     NOW + timedelta(days=10), "conference")
    sooner = time_off(api_conn, world.practitioner_user, world.practitioner, NOW + timedelta(days=2),
                      NOW + timedelta(days=3))
    ending = time_off(api_conn, world.practitioner_user, world.practitioner, NOW - timedelta(days=1),
                      NOW + timedelta(hours=2))
    time_off(api_conn, world.other_practitioner_user, world.other_practitioner, NOW, NOW + timedelta(days=1))
    assert listed() == [ending["id"], sooner["id"], later["id"]]
    set_clock(admin, NOW + timedelta(hours=2))  # `ending` has ended
    assert listed() == [sooner["id"], later["id"]]
    for actor in (world.other_practitioner_user, world.patient_user):
        with sqlstate("MB403"):
            listed(actor)

    deleted = api_conn.execute("SELECT * FROM delete_time_off(%s, %s, %s)",
                               (world.practitioner_user, world.practitioner, later["id"])).fetchone()
    assert deleted["id"] == later["id"] and deleted["reason"] == "conference"
    assert listed() == [sooner["id"]]
    with sqlstate("MB404"):
        api_conn.execute("SELECT * FROM delete_time_off(%s, %s, %s)",
                         (world.practitioner_user, world.practitioner, later["id"]))
    other = admin.execute("SELECT id FROM booking.time_off_periods WHERE practitioner_id = %s",
                          (world.other_practitioner,)).fetchone()["id"]
    with sqlstate("MB404"):  # someone else's time off, named through this practitioner
        api_conn.execute("SELECT * FROM delete_time_off(%s, %s, %s)",
                         (world.practitioner_user, world.practitioner, other))
    with sqlstate("MB403"):
        api_conn.execute("SELECT * FROM delete_time_off(%s, %s, %s)",
                         (world.practitioner_user, world.other_practitioner, other))


def test_deleting_time_off_recreates_nothing(api_conn, admin, world):
    make_slot(api_conn, world, NOW + timedelta(days=2))
    made = time_off(api_conn, world.practitioner_user, world.practitioner, NOW + timedelta(days=1),
                    NOW + timedelta(days=3))
    assert made["removed_slots"] == 1
    api_conn.execute("SELECT * FROM delete_time_off(%s, %s, %s)",
                     (world.practitioner_user, world.practitioner, made["id"]))
    assert slot_rows(admin, world.practitioner) == []


# Bulk slots ------------------------------------------------------------------------

def create_slots(conn, world, ranges, actor=None, practitioner=None):
    return conn.execute("SELECT * FROM create_slots(%s, %s, %s, %s)",
                        (actor or world.practitioner_user, practitioner or world.practitioner,
                         [r[0] for r in ranges], [r[1] for r in ranges])).fetchall()


def day_ranges(day: datetime, count: int, minutes: int = 30) -> list[tuple[datetime, datetime]]:
    return [(day + timedelta(minutes=minutes * i), day + timedelta(minutes=minutes * (i + 1))) for i in range(count)]


def test_bulk_creates_every_slot(api_conn, admin, world):
    ranges = day_ranges(utc(2027, 3, 3, 9), 16)
    rows = create_slots(api_conn, world, list(reversed(ranges)))
    assert len(rows) == 16
    assert {(r["start_time"], r["end_time"]) for r in rows} == set(ranges)
    assert {r["status"] for r in rows} == {"available"} and set(rows[0]) == {
        "id", "practitioner_id", "start_time", "end_time", "status", "version"}
    assert len(slot_rows(admin, world.practitioner)) == 16


def test_bulk_of_500_and_not_more(api_conn, admin, world):
    ranges = day_ranges(utc(2027, 3, 3), 500, minutes=10)
    with sqlstate("MB400"):
        create_slots(api_conn, world, [*ranges, (utc(2027, 4, 1), utc(2027, 4, 1, 1))])
    with sqlstate("MB400"):
        create_slots(api_conn, world, [])
    with sqlstate("MB400"):
        api_conn.execute("SELECT * FROM create_slots(%s, %s, %s, %s)",
                         (world.practitioner_user, world.practitioner, [ranges[0][0]], []))
    assert slot_rows(admin, world.practitioner) == []
    assert len(create_slots(api_conn, world, ranges)) == 500


def bulk_errors(info: pytest.ExceptionInfo) -> list[dict]:
    return json.loads(info.value.diag.message_detail)


def test_bulk_is_all_or_nothing_and_reports_every_failing_item(api_conn, admin, world):
    existing = make_slot(api_conn, world, utc(2027, 3, 3, 12))
    ranges = [
        (utc(2027, 3, 3, 9), utc(2027, 3, 3, 9, 30)),             # 0 fine
        (utc(2027, 3, 3, 9, 15), utc(2027, 3, 3, 9, 45)),         # 1 overlaps item 0
        (NOW - timedelta(hours=1), NOW),                          # 2 in the past
        (utc(2027, 3, 3, 12, 15), utc(2027, 3, 3, 12, 20)),       # 3 overlaps the existing slot
        (utc(2027, 3, 3, 14), utc(2027, 3, 3, 13)),               # 4 ends before it starts
        (utc(2027, 3, 3, 15), utc(2027, 3, 4, 15, 1)),            # 5 longer than 24 hours
        (utc(2030, 3, 3, 15), utc(2030, 3, 3, 16)),               # 6 beyond two years
        (None, utc(2027, 3, 3, 17)),                              # 7 no start
        (utc(2027, 3, 3, 9, 40), utc(2027, 3, 3, 10)),            # 8 overlaps item 1 only, which failed: reported
        (utc(2027, 3, 3, 18), utc(2027, 3, 3, 18, 30)),           # 9 fine
    ]
    with sqlstate("MBS02") as info:  # the state of the first failing item (1)
        create_slots(api_conn, world, ranges)
    errors = bulk_errors(info)
    assert [(e["index"], e["sqlstate"]) for e in errors] == [
        (1, "MBS02"), (2, "MBS04"), (3, "MBS02"), (4, "MBS05"), (5, "MBS05"), (6, "MBS05"), (7, "MB400"),
        (8, "MBS02")]
    assert "item 0" in errors[0]["detail"] and f"slot {existing['id']}" in errors[2]["detail"]
    assert "item 1" in errors[7]["detail"]
    assert [r["id"] for r in slot_rows(admin, world.practitioner)] == [existing["id"]]
    # The status comes from the first failing item.
    with sqlstate("MBS04"):
        create_slots(api_conn, world, [ranges[2], ranges[1], ranges[0]])


def test_bulk_meets_the_same_rules_as_single_slots(api_conn, world):
    for actor in (world.other_practitioner_user, world.patient_user, world.stranger_user):
        with sqlstate("MB403"):
            create_slots(api_conn, world, day_ranges(utc(2027, 3, 3, 9), 2), actor=actor)
    with sqlstate("MB404"):
        create_slots(api_conn, world, day_ranges(utc(2027, 3, 3, 9), 2), practitioner=10**12)
    # Back to back is not an overlap, and other practitioners' slots do not matter.
    make_slot(api_conn, world, utc(2027, 3, 3, 9), practitioner="other_practitioner")
    assert len(create_slots(api_conn, world, [(utc(2027, 3, 3, 8, 30), utc(2027, 3, 3, 9)),
                                              *day_ranges(utc(2027, 3, 3, 9), 2)])) == 3


def test_bulk_backed_by_the_exclusion_constraint(admin, world):
    """Even a caller that skipped the checks (a DBA inserting by hand) cannot store an overlap."""
    with sqlstate("23P01"):
        admin.execute("INSERT INTO booking.availability_slots (practitioner_id, start_time, end_time) "
                      "VALUES (%s, %s, %s), (%s, %s, %s)",
                      (world.practitioner, utc(2027, 3, 3, 9), utc(2027, 3, 3, 10),
                       world.practitioner, utc(2027, 3, 3, 9, 30), utc(2027, 3, 3, 10, 30)))


# Range delete ----------------------------------------------------------------------

def delete_range(conn, world, start, end, actor=None):
    return conn.execute("SELECT * FROM delete_slots(%s, %s, %s, %s)",
                        (actor or world.practitioner_user, world.practitioner, start, end)).fetchone()


def test_range_delete_takes_available_slots_and_keeps_booked_ones(api_conn, admin, world):
    api_conn.execute("SELECT * FROM set_booking_settings(%s, %s, 'Europe/London', NULL)",
                     (world.practitioner_user, world.practitioner))
    # Local dates 5 to 6 April 2027 (BST) run from 4 April 23:00 UTC to 6 April 23:00 UTC.
    before = make_slot(api_conn, world, utc(2027, 4, 4, 22, 30))
    first = make_slot(api_conn, world, utc(2027, 4, 4, 23))
    booked = make_slot(api_conn, world, utc(2027, 4, 5, 12))
    last = make_slot(api_conn, world, utc(2027, 4, 6, 22, 30))
    after = make_slot(api_conn, world, utc(2027, 4, 6, 23))
    book(api_conn, world, booked["id"])
    assert delete_range(api_conn, world, date(2027, 4, 5), date(2027, 4, 6)) == {
        "deleted": 2, "booked_slot_ids": [booked["id"]]}
    assert [r["id"] for r in slot_rows(admin, world.practitioner)] == [before["id"], booked["id"], after["id"]]
    assert first and last
    assert delete_range(api_conn, world, date(2027, 4, 5), date(2027, 4, 6)) == {
        "deleted": 0, "booked_slot_ids": [booked["id"]]}
    assert invariant_violations(admin) == []


def test_range_delete_keeps_started_slots_and_other_practitioners(api_conn, admin, world):
    started = make_slot(api_conn, world, NOW + timedelta(minutes=10))
    later = make_slot(api_conn, world, NOW + timedelta(hours=3))
    theirs = make_slot(api_conn, world, NOW + timedelta(hours=3), practitioner="other_practitioner")
    set_clock(admin, NOW + timedelta(minutes=20))
    assert delete_range(api_conn, world, NOW.date(), NOW.date())["deleted"] == 1
    remaining = {r["id"] for r in admin.execute("SELECT id FROM booking.availability_slots")}
    assert remaining == {started["id"], theirs["id"]}
    assert later


@pytest.mark.parametrize(("start", "end"), [
    (date(2027, 3, 10), date(2027, 3, 9)),
    (date(2027, 3, 1), date(2028, 3, 1)),    # 367 days (2028 is a leap year)
    (date(2027, 3, 1), date(2028, 4, 4)),    # 400 days
    (None, date(2027, 3, 9)),
    (date(2027, 3, 9), None),
])
def test_range_delete_bounds(api_conn, admin, world, start, end):
    make_slot(api_conn, world, NOW + timedelta(days=3))
    with sqlstate("MB400"):
        delete_range(api_conn, world, start, end)
    assert len(slot_rows(admin, world.practitioner)) == 1


def test_range_delete_of_366_days_and_who(api_conn, world):
    assert delete_range(api_conn, world, date(2027, 3, 1), date(2028, 2, 29))["deleted"] == 0
    for actor in (world.other_practitioner_user, world.patient_user):
        with sqlstate("MB403"):
            delete_range(api_conn, world, date(2027, 3, 1), date(2027, 3, 2), actor=actor)


def test_cancelled_appointments_keep_their_times_when_the_range_is_deleted(api_conn, admin, world):
    slot = make_slot(api_conn, world, NOW + timedelta(days=2))
    appointment = book(api_conn, world, slot["id"])
    api_conn.execute("SELECT * FROM cancel_appointment(%s, %s)", (world.practitioner_user, appointment["id"]))
    assert delete_range(api_conn, world, (NOW + timedelta(days=2)).date(),
                        (NOW + timedelta(days=2)).date())["deleted"] == 1
    row = admin.execute("SELECT slot_id, start_time, status FROM booking.appointments WHERE id = %s",
                        (appointment["id"],)).fetchone()
    assert row == {"slot_id": None, "start_time": slot["start_time"], "status": "cancelled"}
    assert invariant_violations(admin) == []


def test_errors_carry_hints_and_no_personal_data(api_conn, world):
    with pytest.raises(psycopg.Error) as info:
        api_conn.execute("SELECT * FROM create_time_off(%s, %s, %s, %s, 'private reason')",
                         (world.practitioner_user, world.practitioner, NOW + timedelta(days=2),
                          NOW + timedelta(days=1)))
    assert info.value.diag.message_hint
    assert "private" not in (info.value.diag.message_detail or "")
