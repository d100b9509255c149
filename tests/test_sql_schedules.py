"""Weekly schedule rules and publishing at the SQL level, called as medbook_api.

The clock stands at NOW, Monday 2027-03-01 12:00 UTC. Practitioners without
settings are in UTC, so local dates and times below are UTC unless a test sets
a zone. Daylight-saving publishing is in tests/test_dst.py.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from conftest import NOW, invariant_violations, make_slot, set_clock, sqlstate
from psycopg.types.json import Jsonb

from api import cli, demo

MONDAY = {"weekday": 1, "start": "09:00", "end": "17:00", "slot_minutes": 30}


def set_schedule(conn, actor, practitioner, rules):
    return conn.execute("SELECT * FROM set_schedule(%s, %s, %s)", (actor, practitioner, Jsonb(rules))).fetchall()


def get_schedule(conn, actor, practitioner):
    return conn.execute("SELECT * FROM get_schedule(%s, %s)", (actor, practitioner)).fetchall()


def publish(conn, actor, practitioner, through):
    return conn.execute("SELECT * FROM publish_schedule(%s, %s, %s)", (actor, practitioner, through)).fetchone()


def starts(conn, practitioner, since=NOW - timedelta(days=1)):
    rows = conn.execute("SELECT start_time, end_time FROM booking.availability_slots "
                        "WHERE practitioner_id = %s AND start_time > %s ORDER BY start_time",
                        (practitioner, since)).fetchall()
    return [(r["start_time"], r["end_time"]) for r in rows]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def rule_rows(rows):
    return [(r["weekday"], r["local_start"].strftime("%H:%M"), r["local_end"].strftime("%H:%M"),
             r["slot_minutes"], r["valid_from"], r["valid_until"]) for r in rows]


# Rules ---------------------------------------------------------------------------

def test_rules_are_replaced_as_a_whole_and_read_back(api_conn, world):
    stored = set_schedule(api_conn, world.practitioner_user, world.practitioner, [
        {"weekday": 3, "start": "14:00", "end": "18:00", "slot_minutes": 45, "valid_from": "2027-04-01"},
        MONDAY,
        {"weekday": 1, "start": "18:00", "end": "20:00", "slot_minutes": 20, "valid_until": "2027-12-31",
         "valid_from": None},
    ])
    expected = [(1, "09:00", "17:00", 30, None, None), (1, "18:00", "20:00", 20, None, date(2027, 12, 31)),
                (3, "14:00", "18:00", 45, date(2027, 4, 1), None)]
    assert rule_rows(stored) == expected
    assert rule_rows(get_schedule(api_conn, world.practitioner_user, world.practitioner)) == expected
    assert set_schedule(api_conn, world.practitioner_user, world.practitioner, [MONDAY]) != []
    assert rule_rows(get_schedule(api_conn, world.practitioner_user, world.practitioner)) == [
        (1, "09:00", "17:00", 30, None, None)]
    assert set_schedule(api_conn, world.practitioner_user, world.practitioner, []) == []
    assert get_schedule(api_conn, world.practitioner_user, world.practitioner) == []


def test_only_that_practitioner_sets_or_reads_rules(api_conn, world):
    for actor in (world.other_practitioner_user, world.patient_user, world.stranger_user):
        with sqlstate("MB403"):
            set_schedule(api_conn, actor, world.practitioner, [MONDAY])
        with sqlstate("MB403"):
            get_schedule(api_conn, actor, world.practitioner)
    with sqlstate("MB404"):
        set_schedule(api_conn, world.practitioner_user, 10**12, [MONDAY])
    with sqlstate("MB401"):
        get_schedule(api_conn, 10**12, world.practitioner)


MALFORMED = [
    ({"weekday": 0}, "weekday 0"), ({"weekday": 8}, "weekday 8"), ({"weekday": "1"}, "weekday as text"),
    ({"weekday": 1.5}, "fractional weekday"), ({"weekday": True}, "boolean"),
    ({"weekday": None}, "null weekday"), ({"start": "24:00"}, "24:00"), ({"end": "24:00"}, "end 24:00"),
    ({"start": "9:00"}, "one-digit hour"), ({"start": "09:00:00"}, "seconds"), ({"start": "09:60"}, "minute 60"),
    ({"start": 900}, "number"), ({"start": "０９:００"}, "non-ASCII digits"),  # noqa: RUF001
    ({"slot_minutes": 0}, "0 minutes"), ({"slot_minutes": 4}, "4 minutes"), ({"slot_minutes": 481}, "481"),
    ({"slot_minutes": -30}, "negative"), ({"slot_minutes": "30"}, "minutes as text"),
    ({"slot_minutes": 30.5}, "fractional minutes"), ({"slot_minutes": 10**30}, "huge"),
    ({"valid_from": "2027-02-30"}, "no such date"), ({"valid_from": "2027-3-1"}, "short date"),
    ({"valid_until": 20270301}, "number date"), ({"colour": "blue"}, "unknown field"),
]


@pytest.mark.parametrize(("change", "label"), MALFORMED, ids=[label for _, label in MALFORMED])
def test_malformed_rules_are_validation_errors(api_conn, admin, world, change, label):
    with sqlstate("MB400"):
        set_schedule(api_conn, world.practitioner_user, world.practitioner, [MONDAY, {**MONDAY, "weekday": 2,
                                                                                       **change}])
    assert admin.execute("SELECT count(*) AS n FROM booking.schedule_rules").fetchone()["n"] == 0


@pytest.mark.parametrize("rules", [
    None, {"rules": []}, "monday", [1], [[MONDAY]], [{key: value for key, value in MONDAY.items() if key != "end"}],
    [MONDAY] * 201,
], ids=["null", "object", "string", "number item", "nested list", "missing end", "201 rules"])
def test_rule_sets_that_are_not_lists_of_rules(api_conn, world, rules):
    with sqlstate("MB400"):
        api_conn.execute("SELECT * FROM set_schedule(%s, %s, %s)",
                         (world.practitioner_user, world.practitioner, None if rules is None else Jsonb(rules)))


@pytest.mark.parametrize(("rules", "label"), [
    ([{**MONDAY, "start": "17:00", "end": "09:00"}], "end before start"),
    ([{**MONDAY, "start": "09:00", "end": "09:00"}], "empty"),
    ([{**MONDAY, "start": "09:00", "end": "09:20"}], "shorter than one slot"),
    ([{**MONDAY, "valid_from": "2027-05-01", "valid_until": "2027-04-30"}], "validity backwards"),
    ([MONDAY, {**MONDAY, "start": "16:30", "end": "18:00"}], "overlapping times"),
    ([MONDAY, MONDAY], "duplicate"),
    ([{**MONDAY, "valid_until": "2027-06-30"}, {**MONDAY, "start": "12:00", "valid_from": "2027-06-30"}],
     "validities share a day"),
])
def test_rules_that_cannot_be_a_schedule(api_conn, admin, world, rules, label):
    set_schedule(api_conn, world.practitioner_user, world.practitioner, [{**MONDAY, "weekday": 5}])
    with sqlstate("MBV01"):
        set_schedule(api_conn, world.practitioner_user, world.practitioner, rules)
    # Nothing changed: the old rule set is still there.
    assert rule_rows(get_schedule(api_conn, world.practitioner_user, world.practitioner)) == [
        (5, "09:00", "17:00", 30, None, None)]


def test_whole_numbers_may_carry_a_zero_fraction(api_conn, world):
    """JSON Schema's integer: 3.0 is 3 (as the API's other integer fields accept)."""
    stored = set_schedule(api_conn, world.practitioner_user, world.practitioner,
                          [{**MONDAY, "weekday": 3.0, "slot_minutes": 30.0}])
    assert rule_rows(stored) == [(3, "09:00", "17:00", 30, None, None)]


def test_rules_that_touch_or_take_turns_are_fine(api_conn, world):
    rules = [MONDAY, {**MONDAY, "start": "17:00", "end": "19:00"},                 # back to back
             {**MONDAY, "weekday": 2, "valid_until": "2027-06-29"},
             {**MONDAY, "weekday": 2, "start": "08:00", "valid_from": "2027-06-30"},  # one after the other
             {**MONDAY, "weekday": 3, "start": "00:00", "end": "23:59", "slot_minutes": 480}]
    assert len(set_schedule(api_conn, world.practitioner_user, world.practitioner, rules)) == 5
    # Another practitioner's rules never clash with these.
    assert len(set_schedule(api_conn, world.other_practitioner_user, world.other_practitioner, rules)) == 5


def test_the_table_refuses_what_the_function_refuses(admin, world):
    """A DBA writing the table directly meets the same rules as constraints."""
    insert = ("INSERT INTO booking.schedule_rules (practitioner_id, weekday, local_start, local_end, slot_minutes) "
              "VALUES (%s, %s, %s, %s, %s)")
    admin.execute(insert, (world.practitioner, 1, "09:00", "12:00", 30))
    for values, state in [((8, "09:00", "12:00", 30), "23514"), ((2, "09:00", "24:00", 30), "23514"),
                          ((2, "12:00", "09:00", 30), "23514"), ((2, "09:00", "12:00", 481), "23514"),
                          ((2, "09:00", "09:20", 30), "23514"), ((2, "09:00:30", "12:00", 30), "23514"),
                          ((1, "11:00", "13:00", 30), "23P01")]:
        with sqlstate(state):
            admin.execute(insert, (world.practitioner, *values))


# Publishing ----------------------------------------------------------------------

def test_publish_creates_the_described_slots_and_skips_started_ones(api_conn, admin, world):
    set_schedule(api_conn, world.practitioner_user, world.practitioner,
                 [{"weekday": 1, "start": "09:00", "end": "17:00", "slot_minutes": 60}])
    # Monday 1 March (today, started until 12:00 inclusive) and Monday 8 March.
    result = publish(api_conn, world.practitioner_user, world.practitioner, date(2027, 3, 8))
    assert result == {"created": 4 + 8, "skipped": 4}
    assert starts(admin, world.practitioner) == (
        [(utc(2027, 3, 1, h), utc(2027, 3, 1, h + 1)) for h in range(13, 17)]
        + [(utc(2027, 3, 8, h), utc(2027, 3, 8, h + 1)) for h in range(9, 17)])
    assert invariant_violations(admin) == []


def test_publish_again_creates_nothing(api_conn, admin, world):
    set_schedule(api_conn, world.practitioner_user, world.practitioner, [MONDAY, {**MONDAY, "weekday": 4}])
    first = publish(api_conn, world.practitioner_user, world.practitioner, date(2027, 3, 31))
    before = starts(admin, world.practitioner)
    second = publish(api_conn, world.practitioner_user, world.practitioner, date(2027, 3, 31))
    assert first["created"] > 0
    assert second == {"created": 0, "skipped": first["created"] + first["skipped"]}
    assert starts(admin, world.practitioner) == before
    # Further ahead only the new dates are created.
    third = publish(api_conn, world.practitioner_user, world.practitioner, date(2027, 4, 7))
    assert third["created"] == 2 * 16  # Thursday 1 April and Monday 5 April


def test_publish_skips_overlaps_and_time_off_without_touching_them(api_conn, admin, world):
    set_schedule(api_conn, world.practitioner_user, world.practitioner,
                 [{"weekday": 2, "start": "09:00", "end": "12:00", "slot_minutes": 60}])
    existing = make_slot(api_conn, world, utc(2027, 3, 2, 9, 30), minutes=15)  # inside the 09:00 slot
    booked = make_slot(api_conn, world, utc(2027, 3, 9, 11, 0), minutes=60)    # exactly the 11:00 slot
    api_conn.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, booked["id"]))
    api_conn.execute("SELECT * FROM create_time_off(%s, %s, %s, %s, 'training')",
                     (world.practitioner_user, world.practitioner, utc(2027, 3, 16, 10, 30), utc(2027, 3, 16, 23)))
    result = publish(api_conn, world.practitioner_user, world.practitioner, date(2027, 3, 16))
    # Three Tuesdays x 3 slots: 2 March 09:00 overlaps a slot, 9 March 11:00 is booked already,
    # 16 March 10:00 and 11:00 overlap the time off.
    assert result == {"created": 5, "skipped": 4}
    assert starts(admin, world.practitioner) == [
        (utc(2027, 3, 2, 9, 30), utc(2027, 3, 2, 9, 45)), (utc(2027, 3, 2, 10), utc(2027, 3, 2, 11)),
        (utc(2027, 3, 2, 11), utc(2027, 3, 2, 12)), (utc(2027, 3, 9, 9), utc(2027, 3, 9, 10)),
        (utc(2027, 3, 9, 10), utc(2027, 3, 9, 11)), (utc(2027, 3, 9, 11), utc(2027, 3, 9, 12)),
        (utc(2027, 3, 16, 9), utc(2027, 3, 16, 10))]
    kept = admin.execute("SELECT status FROM booking.availability_slots WHERE id = ANY(%s) ORDER BY id",
                         ([existing["id"], booked["id"]],)).fetchall()
    assert [r["status"] for r in kept] == ["available", "booked"]
    assert invariant_violations(admin) == []


def test_changing_rules_never_moves_or_deletes_slots(api_conn, admin, world):
    set_schedule(api_conn, world.practitioner_user, world.practitioner, [MONDAY])
    publish(api_conn, world.practitioner_user, world.practitioner, date(2027, 3, 15))
    before = starts(admin, world.practitioner)
    set_schedule(api_conn, world.practitioner_user, world.practitioner,
                 [{**MONDAY, "start": "10:15", "end": "11:00", "slot_minutes": 45}])
    set_schedule(api_conn, world.practitioner_user, world.practitioner, [])
    assert starts(admin, world.practitioner) == before


def test_validity_dates_and_the_remainder_of_a_rule(api_conn, admin, world):
    set_schedule(api_conn, world.practitioner_user, world.practitioner, [
        # 50 minutes hold one slot of 45: the last 5 minutes stay empty.
        {"weekday": 3, "start": "08:00", "end": "08:50", "slot_minutes": 45,
         "valid_from": "2027-03-10", "valid_until": "2027-03-17"}])
    assert publish(api_conn, world.practitioner_user, world.practitioner, date(2027, 3, 31)) == {
        "created": 2, "skipped": 0}
    assert starts(admin, world.practitioner) == [
        (utc(2027, 3, 10, 8), utc(2027, 3, 10, 8, 45)), (utc(2027, 3, 17, 8), utc(2027, 3, 17, 8, 45))]


def test_publish_through_today_up_to_two_years(api_conn, admin, world):
    set_schedule(api_conn, world.practitioner_user, world.practitioner,
                 [{"weekday": d, "start": "20:00", "end": "21:00", "slot_minutes": 60} for d in range(1, 8)])
    assert publish(api_conn, world.practitioner_user, world.practitioner, date(2027, 3, 1)) == {
        "created": 1, "skipped": 0}
    for through in (date(2027, 2, 28), date(2029, 3, 2), date(9999, 12, 31)):
        with sqlstate("MBS05"):
            publish(api_conn, world.practitioner_user, world.practitioner, through)
    with sqlstate("MB400"):
        publish(api_conn, world.practitioner_user, world.practitioner, None)
    # Two years ahead is the horizon: the last day's slot at 20:00 starts after NOW + 2 years.
    result = publish(api_conn, world.practitioner_user, world.practitioner, date(2029, 3, 1))
    # 732 local dates: today's slot exists already, the last day's 20:00 is beyond the horizon.
    assert result == {"created": 730, "skipped": 2}
    last = admin.execute("SELECT max(start_time) AS t FROM booking.availability_slots").fetchone()["t"]
    assert last == utc(2029, 2, 28, 20)


def test_publish_is_for_that_practitioner_only(api_conn, world):
    for actor in (world.other_practitioner_user, world.patient_user, world.stranger_user):
        with sqlstate("MB403"):
            publish(api_conn, actor, world.practitioner, date(2027, 3, 8))
    with sqlstate("MB404"):
        publish(api_conn, world.practitioner_user, 10**12, date(2027, 3, 8))


def test_publish_without_rules_creates_nothing(api_conn, world):
    assert publish(api_conn, world.practitioner_user, world.practitioner, date(2027, 12, 31)) == {
        "created": 0, "skipped": 0}


def test_publish_in_the_practitioners_zone(api_conn, admin, world):
    api_conn.execute("SELECT * FROM set_booking_settings(%s, %s, 'Asia/Kolkata', NULL)",
                     (world.practitioner_user, world.practitioner))
    set_schedule(api_conn, world.practitioner_user, world.practitioner,
                 [{"weekday": 2, "start": "09:00", "end": "10:00", "slot_minutes": 30}])
    # Today in Kolkata is Monday 1 March (17:30 there); Tuesday 2 March 09:00 IST is 03:30 UTC.
    assert publish(api_conn, world.practitioner_user, world.practitioner, date(2027, 3, 2)) == {
        "created": 2, "skipped": 0}
    assert starts(admin, world.practitioner) == [(utc(2027, 3, 2, 3, 30), utc(2027, 3, 2, 4)),
                                                 (utc(2027, 3, 2, 4), utc(2027, 3, 2, 4, 30))]


def test_publish_all_schedules_publishes_everyone_with_rules(api_conn, admin, world):
    set_schedule(api_conn, world.practitioner_user, world.practitioner, [MONDAY])
    set_schedule(api_conn, world.other_practitioner_user, world.other_practitioner,
                 [{**MONDAY, "weekday": 2, "end": "10:00"}])
    outcome = admin.execute("CALL publish_all_schedules(7)").fetchone()
    # Through Monday 8 March: Monday 1 March has 9 slots after 12:00 of 16, Monday 8 has 16; one Tuesday x 2.
    assert outcome == {"practitioners": 2, "created": 9 + 16 + 2, "skipped": 7, "failed": 0}
    again = admin.execute("CALL publish_all_schedules(7)").fetchone()
    assert again == {"practitioners": 2, "created": 0, "skipped": 34, "failed": 0}
    with sqlstate("MB400"):
        admin.execute("CALL publish_all_schedules(731)")
    with sqlstate("MB400"):
        admin.execute("CALL publish_all_schedules(-1)")
    assert invariant_violations(admin) == []


def test_publish_all_commits_practitioner_by_practitioner(api_conn, admin, world, db):
    """While it runs, a practitioner already published can be booked: their lock is not held to the end."""
    set_schedule(api_conn, world.practitioner_user, world.practitioner, [MONDAY])
    set_schedule(api_conn, world.other_practitioner_user, world.other_practitioner, [MONDAY])
    # Hold the second practitioner's lock: publish_all must finish the first and commit it meanwhile.
    holder = psycopg.connect(db, autocommit=False)
    holder.execute("SELECT booking.booking_lock_practitioner(%s, true)", (world.other_practitioner,))
    done = threading.Event()
    outcome: dict = {}

    def run():
        with psycopg.connect(db, autocommit=True) as conn:
            outcome["row"] = conn.execute("CALL publish_all_schedules(7)").fetchone()
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while datetime.now(UTC) < deadline:
            first = admin.execute("SELECT count(*) AS n FROM booking.availability_slots WHERE practitioner_id = %s",
                                  (world.practitioner,)).fetchone()["n"]
            if first:
                break
        assert first == 25, "the first practitioner's slots are committed while the second waits"
        assert not done.is_set()
    finally:
        holder.rollback()
        holder.close()
        thread.join(timeout=30)
    assert outcome["row"][0] == 2


def test_rules_and_publishing_leave_reports_and_invariants_sound(api_conn, admin, world):
    set_schedule(api_conn, world.practitioner_user, world.practitioner, [MONDAY])
    publish(api_conn, world.practitioner_user, world.practitioner, date(2027, 3, 8))
    slots = admin.execute("SELECT id FROM booking.availability_slots ORDER BY start_time").fetchall()
    api_conn.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slots[0]["id"]))
    set_clock(admin, NOW + timedelta(days=7, hours=2))
    assert publish(api_conn, world.practitioner_user, world.practitioner, date(2027, 3, 8))["created"] == 0
    assert invariant_violations(admin) == []


def test_medbook_publish_runs_the_nightly_publish(db, admin, api_conn, world, monkeypatch, capsys):
    set_schedule(api_conn, world.practitioner_user, world.practitioner, [MONDAY])
    monkeypatch.setenv("DATABASE_URL", db)
    assert cli.main(["publish", "--days", "7"]) == 0
    assert capsys.readouterr().out.strip() == (
        "published 1 practitioners 7 days ahead: 25 slots created, 7 skipped; 0 failed")
    assert cli.main(["publish", "--days", "7"]) == 0
    assert "0 slots created, 32 skipped" in capsys.readouterr().out


def test_the_demo_practitioner_works_a_published_week(db, admin):
    people = demo.load(db)
    rules = admin.execute("SELECT count(*) AS n FROM booking.schedule_rules WHERE practitioner_id = %s",
                          (people.practitioner_id,)).fetchone()["n"]
    assert rules == 10  # Monday to Friday, morning and afternoon
    slots = admin.execute("SELECT count(*) AS n, max(start_time) AS last FROM booking.availability_slots "
                          "WHERE practitioner_id = %s", (people.practitioner_id,)).fetchone()
    # London, from Monday 1 March 2027 12:00 GMT through Monday 29 March: that afternoon's 8 slots,
    # then 20 weekdays of 14 (6 in the morning, 8 in the afternoon); the clocks go forward on the 28th.
    assert slots["n"] == 8 + 20 * 14
    assert slots["last"] == datetime(2027, 3, 29, 15, 30, tzinfo=UTC)  # 16:30 BST
    assert demo.load(db) == people
    assert admin.execute("SELECT count(*) AS n FROM booking.availability_slots").fetchone()["n"] == slots["n"]
