"""Slot rules at the SQL level: create, update, delete, read and list, called as medbook_api."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import NOW, invariant_violations, make_slot, set_clock, sqlstate

DAY = NOW + timedelta(days=3)


def create(conn, actor, practitioner, start, end):
    return conn.execute("SELECT * FROM create_slot(%s, %s, %s, %s)", (actor, practitioner, start, end)).fetchone()


def test_practitioner_creates_an_available_slot(api_conn, world):
    slot = create(api_conn, world.practitioner_user, world.practitioner, DAY, DAY + timedelta(minutes=45))
    assert slot["practitioner_id"] == world.practitioner
    assert (slot["start_time"], slot["end_time"]) == (DAY, DAY + timedelta(minutes=45))
    assert slot["status"] == "available"


@pytest.mark.parametrize(("actor", "code"), [
    ("other_practitioner_user", "MB403"),
    ("patient_user", "MB403"),
    ("stranger_user", "MB403"),
])
def test_only_the_owning_practitioner_creates_slots(api_conn, world, actor, code):
    with sqlstate(code):
        create(api_conn, getattr(world, actor), world.practitioner, DAY, DAY + timedelta(minutes=30))


def test_unknown_actor_and_unknown_practitioner(api_conn, world):
    with sqlstate("MB401"):
        create(api_conn, 10**12, world.practitioner, DAY, DAY + timedelta(minutes=30))
    with sqlstate("MB401"):
        create(api_conn, None, world.practitioner, DAY, DAY + timedelta(minutes=30))
    with sqlstate("MB404"):
        create(api_conn, world.practitioner_user, 10**12, DAY, DAY + timedelta(minutes=30))


@pytest.mark.parametrize(("start", "end", "code"), [
    (DAY, DAY, "MBS05"),                                         # end at start
    (DAY, DAY - timedelta(minutes=1), "MBS05"),                  # end before start
    (DAY, DAY + timedelta(hours=24, seconds=1), "MBS05"),        # longer than 24 hours
    (DAY, DAY + timedelta(days=3650), "MBS05"),                  # ten years
    (NOW + timedelta(days=732), NOW + timedelta(days=732, hours=1), "MBS05"),  # beyond the horizon
    (NOW, NOW + timedelta(minutes=30), "MBS04"),                 # starts now
    (NOW - timedelta(seconds=1), NOW + timedelta(minutes=30), "MBS04"),
    (DAY, None, "MB400"),
])
def test_slot_times_are_validated(api_conn, world, start, end, code):
    with sqlstate(code):
        create(api_conn, world.practitioner_user, world.practitioner, start, end)
    assert api_conn.execute(
        "SELECT count(*) AS n FROM list_available_slots(%s, %s)", (world.patient_user, world.practitioner)
    ).fetchone()["n"] == 0


def test_a_full_day_slot_is_allowed(api_conn, world):
    slot = create(api_conn, world.practitioner_user, world.practitioner, DAY, DAY + timedelta(hours=24))
    assert slot["end_time"] - slot["start_time"] == timedelta(hours=24)


def test_overlapping_slots_of_one_practitioner_are_refused(api_conn, world):
    make_slot(api_conn, world, DAY, minutes=60)
    with sqlstate("MBS02"):
        create(api_conn, world.practitioner_user, world.practitioner,
               DAY + timedelta(minutes=30), DAY + timedelta(minutes=90))
    with sqlstate("MBS02"):
        create(api_conn, world.practitioner_user, world.practitioner,
               DAY - timedelta(minutes=10), DAY + timedelta(minutes=70))
    # Touching ranges do not overlap, and another practitioner is independent.
    make_slot(api_conn, world, DAY + timedelta(minutes=60))
    make_slot(api_conn, world, DAY - timedelta(minutes=30))
    make_slot(api_conn, world, DAY, minutes=60, practitioner="other_practitioner")


def test_exclusion_constraint_backs_the_function(admin, world):
    make_slot(admin, world, DAY, minutes=60)
    with sqlstate("23P01"):
        admin.execute("INSERT INTO availability_slots (practitioner_id, start_time, end_time) "
                      "VALUES (%s, %s, %s)", (world.practitioner, DAY + timedelta(minutes=5), DAY + timedelta(hours=2)))
    with sqlstate("23514"):
        admin.execute("INSERT INTO availability_slots (practitioner_id, start_time, end_time) "
                      "VALUES (%s, %s, %s)", (world.practitioner, DAY + timedelta(days=1), DAY + timedelta(days=1)))


def update(conn, actor, slot_id, start=None, end=None):
    return conn.execute("SELECT * FROM update_slot(%s, %s, %s, %s)", (actor, slot_id, start, end)).fetchone()


def test_practitioner_moves_and_resizes_a_slot(api_conn, world):
    slot = make_slot(api_conn, world, DAY)
    moved = update(api_conn, world.practitioner_user, slot["id"], DAY + timedelta(hours=2), DAY + timedelta(hours=3))
    assert (moved["start_time"], moved["end_time"]) == (DAY + timedelta(hours=2), DAY + timedelta(hours=3))
    longer = update(api_conn, world.practitioner_user, slot["id"], None, DAY + timedelta(hours=4))
    assert (longer["start_time"], longer["end_time"]) == (DAY + timedelta(hours=2), DAY + timedelta(hours=4))


def test_update_rules(api_conn, world):
    slot = make_slot(api_conn, world, DAY)
    neighbour = make_slot(api_conn, world, DAY + timedelta(hours=1))
    with sqlstate("MB403"):
        update(api_conn, world.other_practitioner_user, slot["id"], DAY + timedelta(hours=5))
    with sqlstate("MB403"):
        update(api_conn, world.patient_user, slot["id"], DAY + timedelta(hours=5))
    with sqlstate("MB400"):
        update(api_conn, world.practitioner_user, slot["id"])
    with sqlstate("MB404"):
        update(api_conn, world.practitioner_user, 10**12, DAY)
    with sqlstate("MBS04"):
        update(api_conn, world.practitioner_user, slot["id"], NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    with sqlstate("MBS05"):
        update(api_conn, world.practitioner_user, slot["id"], None, DAY - timedelta(minutes=1))
    with sqlstate("MBS02"):
        update(api_conn, world.practitioner_user, slot["id"], None, DAY + timedelta(minutes=61))
    api_conn.execute("SELECT book_slot(%s, %s)", (world.patient_user, neighbour["id"]))
    with sqlstate("MBS03"):
        update(api_conn, world.practitioner_user, neighbour["id"], DAY + timedelta(hours=6))


def test_a_slot_that_has_started_cannot_be_moved(admin, api_conn, world):
    slot = make_slot(api_conn, world, NOW + timedelta(hours=1))
    set_clock(admin, NOW + timedelta(hours=1, minutes=10))
    with sqlstate("MBS04"):
        update(api_conn, world.practitioner_user, slot["id"], NOW + timedelta(days=5))


def test_delete_rules_and_history_survives(admin, api_conn, world):
    slot = make_slot(api_conn, world, DAY)
    with sqlstate("MB403"):
        api_conn.execute("SELECT delete_slot(%s, %s)", (world.other_practitioner_user, slot["id"]))
    appointment = api_conn.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot["id"])).fetchone()
    with sqlstate("MBS03"):
        api_conn.execute("SELECT delete_slot(%s, %s)", (world.practitioner_user, slot["id"]))
    api_conn.execute("SELECT cancel_appointment(%s, %s, 'clinic closed')", (world.practitioner_user, appointment["id"]))

    deleted = api_conn.execute("SELECT * FROM delete_slot(%s, %s)", (world.practitioner_user, slot["id"])).fetchone()
    assert deleted["id"] == slot["id"]
    with sqlstate("MB404"):
        api_conn.execute("SELECT * FROM get_slot(%s, %s)", (world.patient_user, slot["id"]))
    with sqlstate("MB404"):
        api_conn.execute("SELECT delete_slot(%s, %s)", (world.practitioner_user, slot["id"]))

    kept = admin.execute("SELECT * FROM appointments WHERE id = %s", (appointment["id"],)).fetchone()
    assert kept["status"] == "cancelled" and kept["slot_id"] is None
    assert (kept["start_time"], kept["cancellation_reason"]) == (DAY, "clinic closed")
    history = admin.execute("SELECT from_status, to_status FROM appointment_history WHERE appointment_id = %s "
                            "ORDER BY id", (appointment["id"],)).fetchall()
    assert [(h["from_status"], h["to_status"]) for h in history] == [(None, "booked"), ("booked", "cancelled")]
    assert invariant_violations(admin) == []


def test_any_user_reads_a_slot(api_conn, world):
    slot = make_slot(api_conn, world, DAY)
    for actor in (world.patient_user, world.other_practitioner_user, world.stranger_user):
        assert api_conn.execute("SELECT * FROM get_slot(%s, %s)", (actor, slot["id"])).fetchone() == slot
    with sqlstate("MB401"):
        api_conn.execute("SELECT * FROM get_slot(%s, %s)", (10**12, slot["id"]))


def listing(conn, actor, practitioner, day=None, tz=None, limit=100):
    rows = conn.execute("SELECT * FROM list_available_slots(%s, %s, %s, %s, %s)",
                        (actor, practitioner, day, tz, limit)).fetchall()
    return [r["id"] for r in rows]


def test_listing_shows_future_available_slots_earliest_first(admin, api_conn, world):
    late = make_slot(api_conn, world, DAY + timedelta(hours=3))
    early = make_slot(api_conn, world, DAY)
    booked = make_slot(api_conn, world, DAY + timedelta(hours=1))
    soon = make_slot(api_conn, world, NOW + timedelta(minutes=30))
    next_day = make_slot(api_conn, world, DAY + timedelta(days=1))
    make_slot(api_conn, world, DAY, practitioner="other_practitioner")
    api_conn.execute("SELECT book_slot(%s, %s)", (world.patient_user, booked["id"]))

    assert listing(api_conn, world.patient_user, world.practitioner, DAY.date()) == [early["id"], late["id"]]
    assert listing(api_conn, world.patient_user, world.practitioner) == [
        soon["id"], early["id"], late["id"], next_day["id"]]
    assert listing(api_conn, world.patient_user, world.practitioner, limit=2) == [soon["id"], early["id"]]
    # Once a slot has started it is no longer offered, even on its own date.
    set_clock(admin, NOW + timedelta(minutes=30))
    assert soon["id"] not in listing(api_conn, world.patient_user, world.practitioner, NOW.date())
    assert listing(api_conn, world.patient_user, world.practitioner)[0] == early["id"]



def test_listed_slots_are_the_slots_as_get_slot_returns_them(api_conn, world):
    """The list names its columns (so it can be answered from the index); each row is still the whole slot."""
    first = make_slot(api_conn, world, DAY)
    moved = make_slot(api_conn, world, DAY + timedelta(hours=2))
    moved = api_conn.execute("SELECT * FROM update_slot(%s, %s, %s, %s)",
                             (world.practitioner_user, moved["id"], DAY + timedelta(hours=3),
                              DAY + timedelta(hours=4))).fetchone()
    assert moved["version"] > 1
    rows = api_conn.execute("SELECT * FROM list_available_slots(%s, %s, %s)",
                            (world.patient_user, world.practitioner, DAY.date())).fetchall()
    expected = [api_conn.execute("SELECT * FROM get_slot(%s, %s)", (world.patient_user, s["id"])).fetchone()
                for s in (first, moved)]
    assert rows == expected
    assert rows == api_conn.execute("SELECT * FROM list_available_slots(%s, %s)",
                                    (world.patient_user, world.practitioner)).fetchall()


def test_listing_a_day_reads_the_index_alone(admin, world):
    """With the table vacuumed, the day's slots come from an index-only scan that fetches no heap
    page: the index carries every listed column, so the cost of a call does not depend on how the
    practitioner's slots are spread over the table."""
    with admin.transaction():
        # The test server commits asynchronously; VACUUM marks a page all-visible only once the
        # inserting commit is on disk, as it always is on a server with durability on.
        admin.execute("SET LOCAL synchronous_commit = on")
        admin.execute("INSERT INTO booking.availability_slots (practitioner_id, start_time, end_time) "
                      "SELECT p, %s + d * interval '1 day' + h * interval '1 hour', "
                      "%s + d * interval '1 day' + h * interval '1 hour' + interval '30 minutes' "
                      "FROM unnest(ARRAY[%s, %s]) p, generate_series(0, 59) d, generate_series(8, 17) h",
                      (DAY, DAY, world.practitioner, world.other_practitioner))
    admin.execute("VACUUM (ANALYZE) booking.availability_slots")
    admin.execute("LOAD 'auto_explain'")
    for setting, value in (("auto_explain.log_min_duration", "0"), ("auto_explain.log_nested_statements", "on"),
                           ("auto_explain.log_analyze", "on"), ("auto_explain.log_level", "notice"),
                           ("client_min_messages", "notice")):
        admin.execute(f"SET {setting} = {value}")
    plans: list[str] = []
    admin.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
    with admin.transaction():
        admin.execute("SET LOCAL ROLE medbook_api")
        for _ in range(6):  # past PL/pgSQL's first five custom plans
            plans.clear()
            rows = admin.execute("SELECT * FROM booking_api.list_available_slots(%s, %s, %s)",
                                 (world.patient_user, world.practitioner, (DAY + timedelta(days=30)).date())).fetchall()
    assert len(rows) == 10
    listing_plans = [p for p in plans if "FROM availability_slots s" in p]
    assert len(listing_plans) == 1, plans
    assert "Index Only Scan using availability_slots_available_by_start" in listing_plans[0], listing_plans
    assert "Heap Fetches: 0" in listing_plans[0], listing_plans

def test_listing_errors(api_conn, world):
    with sqlstate("MB404"):
        listing(api_conn, world.patient_user, 10**12, DAY.date())
    with sqlstate("MB400"):
        listing(api_conn, world.patient_user, world.practitioner, DAY.date(), "Mars/Olympus_Mons")
    with sqlstate("MB400"):
        listing(api_conn, world.patient_user, world.practitioner, limit=0)
    with sqlstate("MB401"):
        listing(api_conn, 10**12, world.practitioner)
