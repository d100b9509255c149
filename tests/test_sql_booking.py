"""Booking, cancellation and reading rules at the SQL level, called as medbook_api."""

from __future__ import annotations

import re
from datetime import timedelta

import psycopg
import pytest
from conftest import NOW, add_patient, invariant_violations, make_slot, set_clock, sqlstate

START = NOW + timedelta(days=3)


def book(conn, actor, slot_id):
    return conn.execute("SELECT * FROM book_slot(%s, %s)", (actor, slot_id)).fetchone()


def cancel(conn, actor, appointment_id, reason=None):
    return conn.execute("SELECT * FROM cancel_appointment(%s, %s, %s)", (actor, appointment_id, reason)).fetchone()


def slot_status(admin, slot_id):
    return admin.execute("SELECT status FROM availability_slots WHERE id = %s", (slot_id,)).fetchone()["status"]


def test_patient_books_a_slot(admin, api_conn, world):
    slot = make_slot(api_conn, world, START)
    appointment = book(api_conn, world.patient_user, slot["id"])
    assert appointment["patient_id"] == world.patient
    assert appointment["practitioner_id"] == world.practitioner
    assert appointment["slot_id"] == slot["id"]
    assert appointment["status"] == "booked"
    assert (appointment["start_time"], appointment["end_time"]) == (slot["start_time"], slot["end_time"])
    assert appointment["booked_at"] == NOW
    assert appointment["cancelled_at"] is None and appointment["cancelled_by"] is None
    assert slot_status(admin, slot["id"]) == "booked"
    history = admin.execute("SELECT * FROM appointment_history WHERE appointment_id = %s",
                            (appointment["id"],)).fetchall()
    assert [(h["from_status"], h["to_status"], h["actor_user_id"]) for h in history] == [
        (None, "booked", world.patient_user)]


def test_a_booked_slot_is_unavailable(admin, api_conn, world):
    slot = make_slot(api_conn, world, START)
    book(api_conn, world.patient_user, slot["id"])
    with sqlstate("MBS01"):
        book(api_conn, world.other_patient_user, slot["id"])
    with sqlstate("MBS01"):
        book(api_conn, world.patient_user, slot["id"])
    assert admin.execute("SELECT count(*) AS n FROM appointments").fetchone()["n"] == 1


@pytest.mark.parametrize("actor", ["practitioner_user", "other_practitioner_user", "stranger_user"])
def test_only_patients_book(admin, api_conn, world, actor):
    slot = make_slot(api_conn, world, START)
    with sqlstate("MB403"):
        book(api_conn, getattr(world, actor), slot["id"])
    assert slot_status(admin, slot["id"]) == "available"


def test_booking_errors(admin, api_conn, world):
    with sqlstate("MB404"):
        book(api_conn, world.patient_user, 10**12)
    slot = make_slot(api_conn, world, START)
    with sqlstate("MB401"):
        book(api_conn, 10**12, slot["id"])
    assert slot_status(admin, slot["id"]) == "available"


def test_past_slots_cannot_be_booked(admin, api_conn, world):
    slot = make_slot(api_conn, world, START)
    set_clock(admin, START)  # at the start: already started
    with sqlstate("MBS04"):
        book(api_conn, world.patient_user, slot["id"])
    set_clock(admin, START + timedelta(hours=1))
    with sqlstate("MBS04"):
        book(api_conn, world.patient_user, slot["id"])
    set_clock(admin, START - timedelta(seconds=1))
    assert book(api_conn, world.patient_user, slot["id"])["status"] == "booked"


def test_cancel_frees_the_slot_for_another_patient(admin, api_conn, world):
    slot = make_slot(api_conn, world, START)
    first = book(api_conn, world.patient_user, slot["id"])
    cancelled = cancel(api_conn, world.patient_user, first["id"], "  cannot make it  ")
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelled_at"] == NOW
    assert cancelled["cancelled_by"] == world.patient_user
    assert cancelled["cancellation_reason"] == "cannot make it"
    assert slot_status(admin, slot["id"]) == "available"

    second = book(api_conn, world.other_patient_user, slot["id"])
    assert second["id"] != first["id"] and second["patient_id"] == world.other_patient
    assert slot_status(admin, slot["id"]) == "booked"
    first_again = api_conn.execute("SELECT * FROM get_appointment(%s, %s)",
                                   (world.patient_user, first["id"])).fetchone()
    assert first_again["status"] == "cancelled"
    assert invariant_violations(admin) == []


def test_cancel_twice(api_conn, world):
    appointment = book(api_conn, world.patient_user, make_slot(api_conn, world, START)["id"])
    cancel(api_conn, world.patient_user, appointment["id"])
    with sqlstate("MBA01"):
        cancel(api_conn, world.patient_user, appointment["id"])
    with sqlstate("MBA01"):
        cancel(api_conn, world.practitioner_user, appointment["id"])


def test_empty_reason_is_stored_as_none_and_long_reason_refused(api_conn, world):
    appointment = book(api_conn, world.patient_user, make_slot(api_conn, world, START)["id"])
    with sqlstate("MB400"):
        cancel(api_conn, world.patient_user, appointment["id"], "x" * 1001)
    assert cancel(api_conn, world.patient_user, appointment["id"], "   ")["cancellation_reason"] is None


@pytest.mark.parametrize("actor", ["other_patient_user", "other_practitioner_user", "stranger_user"])
def test_only_the_appointments_people_cancel_or_read(admin, api_conn, world, actor):
    appointment = book(api_conn, world.patient_user, make_slot(api_conn, world, START)["id"])
    with sqlstate("MB403"):
        cancel(api_conn, getattr(world, actor), appointment["id"])
    with sqlstate("MB403"):
        api_conn.execute("SELECT * FROM get_appointment(%s, %s)", (getattr(world, actor), appointment["id"]))
    assert admin.execute("SELECT status FROM appointments WHERE id = %s", (appointment["id"],)).fetchone()[
        "status"] == "booked"


def test_patient_and_practitioner_read_the_appointment(api_conn, world):
    appointment = book(api_conn, world.patient_user, make_slot(api_conn, world, START)["id"])
    for actor in (world.patient_user, world.practitioner_user):
        row = api_conn.execute("SELECT * FROM get_appointment(%s, %s)", (actor, appointment["id"])).fetchone()
        assert row == appointment
    with sqlstate("MB404"):
        api_conn.execute("SELECT * FROM get_appointment(%s, %s)", (world.patient_user, 10**12))


# The window: patient until notice (24 h) before the start, practitioner until the start.
@pytest.mark.parametrize(("actor", "clock", "allowed"), [
    ("patient_user", START - timedelta(hours=24, seconds=1), True),
    ("patient_user", START - timedelta(hours=24), False),
    ("patient_user", START - timedelta(hours=24) + timedelta(seconds=1), False),
    ("patient_user", START, False),
    ("practitioner_user", START - timedelta(seconds=1), True),
    ("practitioner_user", START, False),
    ("practitioner_user", START + timedelta(seconds=1), False),
])
def test_cancellation_window_boundaries(admin, api_conn, world, actor, clock, allowed):
    slot = make_slot(api_conn, world, START)
    appointment = book(api_conn, world.patient_user, slot["id"])
    set_clock(admin, clock)
    if allowed:
        assert cancel(api_conn, getattr(world, actor), appointment["id"])["status"] == "cancelled"
        assert slot_status(admin, slot["id"]) == "available"
    else:
        with sqlstate("MBA02"):
            cancel(api_conn, getattr(world, actor), appointment["id"])
        assert slot_status(admin, slot["id"]) == "booked"


def test_practitioner_sets_a_shorter_notice(admin, api_conn, world):
    api_conn.execute("SELECT set_booking_settings(%s, %s, NULL, %s)",
                     (world.practitioner_user, world.practitioner, timedelta(hours=2)))
    appointment = book(api_conn, world.patient_user, make_slot(api_conn, world, START)["id"])
    set_clock(admin, START - timedelta(hours=2))
    with sqlstate("MBA02"):
        cancel(api_conn, world.patient_user, appointment["id"])
    set_clock(admin, START - timedelta(hours=2, seconds=1))
    assert cancel(api_conn, world.patient_user, appointment["id"])["status"] == "cancelled"


def test_settings_rules(api_conn, world):
    with sqlstate("MB403"):
        api_conn.execute("SELECT set_booking_settings(%s, %s, 'Europe/Paris', NULL)",
                         (world.other_practitioner_user, world.practitioner))
    with sqlstate("MB400"):
        api_conn.execute("SELECT set_booking_settings(%s, %s, 'Nowhere/Else', NULL)",
                         (world.practitioner_user, world.practitioner))
    with sqlstate("MB400"):
        api_conn.execute("SELECT set_booking_settings(%s, %s, NULL, %s)",
                         (world.practitioner_user, world.practitioner, timedelta(days=31)))
    settings = api_conn.execute("SELECT * FROM set_booking_settings(%s, %s, 'Europe/Paris', NULL)",
                                (world.practitioner_user, world.practitioner)).fetchone()
    assert (settings["time_zone"], settings["cancellation_notice"]) == ("Europe/Paris", timedelta(hours=24))


def upcoming(conn, actor, patient):
    return [r["id"] for r in conn.execute("SELECT * FROM list_upcoming_appointments(%s, %s)", (actor, patient))]


def test_upcoming_appointments(admin, api_conn, world):
    later = book(api_conn, world.patient_user, make_slot(api_conn, world, START + timedelta(days=2))["id"])
    sooner = book(api_conn, world.patient_user, make_slot(api_conn, world, START)["id"])
    gone = book(api_conn, world.patient_user, make_slot(api_conn, world, START + timedelta(days=1))["id"])
    today = book(api_conn, world.patient_user, make_slot(api_conn, world, NOW + timedelta(hours=1))["id"])
    book(api_conn, world.other_patient_user, make_slot(api_conn, world, START + timedelta(hours=3))["id"])
    cancel(api_conn, world.patient_user, gone["id"])

    assert upcoming(api_conn, world.patient_user, world.patient) == [today["id"], sooner["id"], later["id"]]
    set_clock(admin, NOW + timedelta(hours=1))
    assert upcoming(api_conn, world.patient_user, world.patient) == [sooner["id"], later["id"]]


@pytest.mark.parametrize("actor", ["other_patient_user", "practitioner_user", "stranger_user"])
def test_a_patient_lists_only_their_own(api_conn, world, actor):
    book(api_conn, world.patient_user, make_slot(api_conn, world, START)["id"])
    with sqlstate("MB403"):
        upcoming(api_conn, getattr(world, actor), world.patient)


def test_upcoming_of_unknown_patient(api_conn, world):
    with sqlstate("MB404"):
        upcoming(api_conn, world.patient_user, 10**12)


# The constraints hold even for a superuser who bypasses the functions.

def test_two_booked_appointments_on_one_slot_are_impossible(admin, world):
    slot = make_slot(admin, world, START)
    book(admin, world.patient_user, slot["id"])
    with sqlstate("23505") as refused:
        admin.execute(
            "INSERT INTO appointments (slot_id, patient_id, practitioner_id, start_time, end_time, booked_at) "
            "VALUES (%s, %s, %s, %s, %s, now())",
            (slot["id"], world.other_patient, world.practitioner, slot["start_time"], slot["end_time"]))
    # One unique key holds the rule since 0021 (the partial unique index it replaced is gone).
    assert refused.value.diag.constraint_name == "appointments_slot_holder_key"


def test_each_slot_lookup_of_appointments_has_one_index(admin):
    """0021: no two indexes of appointments answer the same slot_id question (each costs every write)."""
    led_by_slot = admin.execute(
        "SELECT indexrelid::regclass::text AS name FROM pg_index "
        "WHERE indrelid = 'booking.appointments'::regclass "
        "AND indkey[0] = (SELECT attnum FROM pg_attribute "
        "                 WHERE attrelid = 'booking.appointments'::regclass AND attname = 'slot_id')").fetchall()
    assert [row["name"] for row in led_by_slot] == ["appointments_slot_holder_key"]


def test_slot_status_must_match_its_appointments_at_commit(admin, world):
    """The two deferred composite foreign keys (0020): a booked slot has a holder, a holder a booked slot."""
    slot = make_slot(admin, world, START)
    with sqlstate("23503"):
        admin.execute("UPDATE availability_slots SET status = 'booked' WHERE id = %s", (slot["id"],))
    appointment = book(admin, world.patient_user, slot["id"])
    with sqlstate("23503"):
        admin.execute("UPDATE availability_slots SET status = 'available' WHERE id = %s", (slot["id"],))
    with sqlstate("23503"):
        with admin.transaction():
            admin.execute("UPDATE appointments SET status = 'cancelled', cancelled_at = now(), cancelled_by = %s "
                          "WHERE id = %s", (world.patient_user, appointment["id"]))
    assert invariant_violations(admin) == []


def test_one_transaction_may_create_book_cancel_and_rebook_a_slot(admin, world):
    """The commit-time check judges each slot as it is at commit, not as an earlier statement left it."""
    with admin.transaction():
        slot = make_slot(admin, world, START)
        first = book(admin, world.patient_user, slot["id"])
    with admin.transaction():
        cancel(admin, world.patient_user, first["id"])
        second = book(admin, world.patient_user, slot["id"])
        cancel(admin, world.patient_user, second["id"])
    with admin.transaction():
        other = make_slot(admin, world, START + timedelta(hours=1))
        book(admin, world.patient_user, other["id"])
        admin.execute("DELETE FROM availability_slots WHERE id = %s", (slot["id"],))
    assert admin.execute("SELECT 1 FROM availability_slots WHERE id = %s", (slot["id"],)).fetchone() is None
    assert slot_status(admin, other["id"]) == "booked"
    assert invariant_violations(admin) == []


def test_appointments_and_history_are_never_deleted(admin, world):
    appointment = book(admin, world.patient_user, make_slot(admin, world, START)["id"])
    with sqlstate("23000"):
        admin.execute("DELETE FROM appointments WHERE id = %s", (appointment["id"],))
    with sqlstate("23000"):
        admin.execute("DELETE FROM appointment_history")
    with sqlstate("23000"):
        admin.execute("UPDATE appointment_history SET to_status = 'cancelled'")
    with sqlstate("23000"):
        admin.execute("TRUNCATE appointments CASCADE")
    # The patient cannot disappear from under a booking (ON DELETE RESTRICT: PostgreSQL 18
    # reports restrict_violation, older majors foreign_key_violation).
    with pytest.raises(psycopg.errors.IntegrityError) as info:
        admin.execute("DELETE FROM patients WHERE id = %s", (world.patient,))
    assert info.value.sqlstate in {"23001", "23503"}
    with sqlstate("23000"):  # a booked slot cannot be deleted behind the function's back
        admin.execute("DELETE FROM availability_slots WHERE id = %s", (appointment["slot_id"],))
    cancelled = cancel(admin, world.patient_user, appointment["id"])
    with sqlstate("23000"):
        admin.execute("UPDATE appointments SET status = 'booked', cancelled_at = NULL, cancelled_by = NULL "
                      "WHERE id = %s", (cancelled["id"],))
    assert admin.execute("SELECT count(*) AS n FROM appointment_history").fetchone()["n"] == 2


def test_api_role_cannot_move_the_clock(api_conn, admin):
    with sqlstate("42501"):
        api_conn.execute("SELECT booking.set_booking_clock(now())")
    with sqlstate("42501"):
        api_conn.execute("DELETE FROM booking.booking_clock")
    assert api_conn.execute("SELECT booking_now() AS t").fetchone()["t"] == NOW


def test_a_new_patient_can_book(admin, api_conn, world):
    user, patient = add_patient(admin)
    appointment = book(api_conn, user, make_slot(api_conn, world, START)["id"])
    assert appointment["patient_id"] == patient


def test_practitioner_sees_who_is_coming(admin, api_conn, world):
    later = book(api_conn, world.other_patient_user, make_slot(api_conn, world, START + timedelta(days=1))["id"])
    sooner = book(api_conn, world.patient_user, make_slot(api_conn, world, START)["id"])
    gone = book(api_conn, world.patient_user, make_slot(api_conn, world, START + timedelta(hours=2))["id"])
    book(api_conn, world.patient_user, make_slot(api_conn, world, START, practitioner="other_practitioner")["id"])
    cancel(api_conn, world.patient_user, gone["id"])

    def listed(actor):
        return [r["id"] for r in api_conn.execute("SELECT * FROM list_practitioner_appointments(%s, %s)",
                                                  (actor, world.practitioner))]

    assert listed(world.practitioner_user) == [sooner["id"], later["id"]]
    set_clock(admin, START)
    assert listed(world.practitioner_user) == [later["id"]]
    for actor in (world.other_practitioner_user, world.patient_user):
        with sqlstate("MB403"):
            listed(actor)


def test_settings_are_readable_with_defaults(api_conn, world):
    row = api_conn.execute("SELECT * FROM get_booking_settings(%s, %s)",
                           (world.patient_user, world.practitioner)).fetchone()
    assert (row["time_zone"], row["cancellation_notice"]) == ("UTC", timedelta(hours=24))
    api_conn.execute("SELECT set_booking_settings(%s, %s, 'Asia/Tokyo', '90 minutes')",
                     (world.practitioner_user, world.practitioner))
    row = api_conn.execute("SELECT * FROM get_booking_settings(%s, %s)",
                           (world.patient_user, world.practitioner)).fetchone()
    assert (row["time_zone"], row["cancellation_notice"]) == ("Asia/Tokyo", timedelta(minutes=90))
    with sqlstate("MB404"):
        api_conn.execute("SELECT * FROM get_booking_settings(%s, %s)", (world.patient_user, 10**12))


def test_commit_time_checks_probe_one_slot_on_a_new_database(admin, world):
    """On a database whose tables look empty to the planner (new, never analyzed), the
    commit-time consistency checks still probe one slot or one holder by index. They are
    the deferred composite foreign keys of 0020; the constraint triggers before them once
    planned a hashed subplan over every holding appointment here (fixed in 0018)."""
    admin.execute("LOAD 'auto_explain'")
    for setting, value in (("auto_explain.log_min_duration", "0"), ("auto_explain.log_nested_statements", "on"),
                           ("auto_explain.log_triggers", "on"), ("auto_explain.log_level", "notice"),
                           ("client_min_messages", "notice")):
        admin.execute(f"SET {setting} = {value}")
    plans: list[str] = []
    admin.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
    with admin.transaction():
        slot = make_slot(admin, world, START)
        appointment = book(admin, world.patient_user, slot["id"])
    with admin.transaction():
        cancel(admin, world.patient_user, appointment["id"])
    checks = [p for p in plans if '"holds_slot"' in p or '"held"' in p]
    # At the booking's commit: the appointment's slot is booked, the slot has a holder.
    assert any('"availability_slots" x WHERE "id" OPERATOR(pg_catalog.=) $1 AND "held"' in p for p in checks), plans
    assert any('"appointments" x WHERE "slot_id" OPERATOR(pg_catalog.=) $1 AND "holds_slot"' in p
               for p in checks), plans
    # Each is one row by a unique index: the slot by its key, the holder by (slot_id, holds_slot).
    assert all(re.search(r"Index Scan using (availability_slots_pkey|availability_slots_id_held_key) "
                         r"on availability_slots|Index Scan using appointments_slot_holder_key", p)
               for p in checks), checks
    assert not [p for p in checks if "Seq Scan" in p or "SubPlan" in p], checks
