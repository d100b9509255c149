"""check_booking_invariants() finds every kind of corruption it claims to find.

Each test first proves the database is healthy (no rows), then corrupts it the
way only a superuser can (triggers off with session_replication_role =
replica, or a constraint dropped in this throw-away database), and asserts the
function reports exactly that violation. A checker that never reports anything
would pass every other test in the suite; these make it fail.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from conftest import NOW, World, invariant_violations, make_slot

KINDS = {
    "booked_slot_without_booked_appointment",
    "booked_appointment_on_available_slot",
    "several_booked_appointments_per_slot",
    "overlapping_slots",
    "booked_appointment_time_differs_from_slot",
    "history_disagrees_with_status",
    "reschedule_link_broken",
}


def book(conn: psycopg.Connection, world: World, slot_id: int, patient: str = "patient") -> dict:
    return conn.execute("SELECT * FROM book_slot(%s, %s)",
                        (getattr(world, f"{patient}_user"), slot_id)).fetchone()


def kinds(rows: list[dict]) -> set[tuple]:
    return {(r["invariant"], r["slot_id"], r["appointment_id"]) for r in rows}


@pytest.fixture
def booked(admin: psycopg.Connection, world: World) -> tuple[dict, dict]:
    """A booked slot and its appointment, made through the functions; healthy."""
    slot = make_slot(admin, world, NOW + timedelta(days=3))
    appointment = book(admin, world, slot["id"])
    assert invariant_violations(admin) == []
    return slot, appointment


def test_every_kind_is_covered_by_a_test():
    prefix = "test_detects_"
    tested = {name.removeprefix(prefix) for name in globals() if name.startswith(prefix)}
    assert KINDS <= tested


def test_function_reports_nothing_else(admin: psycopg.Connection):
    source = admin.execute(
        "SELECT prosrc FROM pg_proc WHERE proname = 'check_booking_invariants'").fetchone()
    named = {kind for kind in KINDS if f"'{kind}'" in source["prosrc"]}
    assert named == KINDS
    assert source["prosrc"].count("UNION ALL") == len(KINDS) - 1


def test_detects_booked_slot_without_booked_appointment(admin, world):
    slot = make_slot(admin, world, NOW + timedelta(days=1))
    admin.execute("SET session_replication_role = replica")
    admin.execute("UPDATE availability_slots SET status = 'booked' WHERE id = %s", (slot["id"],))
    assert kinds(invariant_violations(admin)) == {
        ("booked_slot_without_booked_appointment", slot["id"], None)}


def test_detects_booked_appointment_on_available_slot(admin, booked):
    slot, appointment = booked
    admin.execute("SET session_replication_role = replica")
    admin.execute("UPDATE availability_slots SET status = 'available' WHERE id = %s", (slot["id"],))
    assert kinds(invariant_violations(admin)) == {
        ("booked_appointment_on_available_slot", slot["id"], appointment["id"])}


def test_booked_appointment_on_missing_slot_is_reported(admin, booked):
    slot, appointment = booked
    admin.execute("SET session_replication_role = replica")
    admin.execute("DELETE FROM availability_slots WHERE id = %s", (slot["id"],))
    rows = invariant_violations(admin)
    assert kinds(rows) == {("booked_appointment_on_available_slot", slot["id"], appointment["id"])}
    assert rows[0]["detail"] == "appointment booked, slot missing"


def test_detects_several_booked_appointments_per_slot(admin, world, booked):
    slot, _ = booked
    admin.execute("ALTER TABLE appointments DROP CONSTRAINT appointments_slot_holder_key CASCADE")
    admin.execute("SET session_replication_role = replica")
    admin.execute(
        "INSERT INTO appointments (slot_id, patient_id, practitioner_id, status, start_time, "
        "end_time, booked_at) SELECT id, %s, practitioner_id, 'booked', start_time, end_time, %s "
        "FROM availability_slots WHERE id = %s",
        (world.other_patient, NOW, slot["id"]))
    found = kinds(invariant_violations(admin))
    assert ("several_booked_appointments_per_slot", slot["id"], None) in found
    # The second appointment was written without its history row, which is reported too.
    assert {kind for kind, *_ in found} == {"several_booked_appointments_per_slot",
                                           "history_disagrees_with_status"}


def test_detects_overlapping_slots(admin, world):
    first = make_slot(admin, world, NOW + timedelta(days=2), minutes=60)
    admin.execute("ALTER TABLE availability_slots DROP CONSTRAINT availability_slots_no_overlap")
    second = admin.execute(
        "INSERT INTO availability_slots (practitioner_id, start_time, end_time) "
        "VALUES (%s, %s, %s) RETURNING id",
        (world.practitioner, first["start_time"] + timedelta(minutes=30),
         first["end_time"] + timedelta(minutes=30))).fetchone()
    # Another practitioner's slot at the same time is no violation.
    make_slot(admin, world, first["start_time"], minutes=60, practitioner="other_practitioner")
    rows = invariant_violations(admin)
    assert kinds(rows) == {("overlapping_slots", first["id"], None)}
    assert rows[0]["detail"] == f"overlaps slot {second['id']}"


def test_detects_booked_appointment_time_differs_from_slot(admin, booked):
    slot, appointment = booked
    # No trigger stops an owner from moving a booked slot's row directly.
    admin.execute("UPDATE availability_slots SET start_time = start_time + interval '5 minutes', "
                  "end_time = end_time + interval '5 minutes' WHERE id = %s", (slot["id"],))
    assert kinds(invariant_violations(admin)) == {
        ("booked_appointment_time_differs_from_slot", slot["id"], appointment["id"])}


def test_detects_history_disagrees_with_status(admin, world, booked):
    slot, appointment = booked
    admin.execute("SET session_replication_role = replica")
    # Cancelled behind the history trigger's back; the slot is freed too, so only
    # the history disagrees.
    admin.execute("UPDATE appointments SET status = 'cancelled', cancelled_at = %s, "
                  "cancelled_by = %s WHERE id = %s", (NOW, world.patient_user, appointment["id"]))
    admin.execute("UPDATE availability_slots SET status = 'available' WHERE id = %s", (slot["id"],))
    rows = invariant_violations(admin)
    assert kinds(rows) == {("history_disagrees_with_status", slot["id"], appointment["id"])}
    assert rows[0]["detail"] == "status cancelled, last history booked"


def test_appointment_without_history_is_reported(admin, world):
    slot = make_slot(admin, world, NOW + timedelta(days=4))
    admin.execute("SET session_replication_role = replica")
    appointment = admin.execute(
        "INSERT INTO appointments (slot_id, patient_id, practitioner_id, status, start_time, "
        "end_time, booked_at) VALUES (%s, %s, %s, 'booked', %s, %s, %s) RETURNING id",
        (slot["id"], world.patient, world.practitioner, slot["start_time"], slot["end_time"],
         NOW)).fetchone()
    admin.execute("UPDATE availability_slots SET status = 'booked' WHERE id = %s", (slot["id"],))
    rows = invariant_violations(admin)
    assert kinds(rows) == {("history_disagrees_with_status", slot["id"], appointment["id"])}
    assert rows[0]["detail"] == "status booked, last history missing"


def test_detects_reschedule_link_broken(admin, world):
    slot = make_slot(admin, world, NOW + timedelta(days=3))
    target = make_slot(admin, world, NOW + timedelta(days=4))
    old = book(admin, world, slot["id"])
    new = admin.execute("SELECT * FROM reschedule_appointment(%s, %s, %s)",
                        (world.patient_user, old["id"], target["id"])).fetchone()
    assert invariant_violations(admin) == []
    admin.execute("SET session_replication_role = replica")
    # The old appointment forgets its successor; the successor still points back.
    admin.execute("UPDATE appointments SET rescheduled_to = NULL WHERE id = %s", (old["id"],))
    rows = invariant_violations(admin)
    assert kinds(rows) == {("reschedule_link_broken", target["id"], new["id"])}
    assert rows[0]["detail"] == f"rescheduled_from {old['id']} does not point back"


def test_reschedule_link_is_checked_at_commit(admin, world):
    """The deferred trigger refuses a link the other appointment does not return."""
    first = book(admin, world, make_slot(admin, world, NOW + timedelta(days=3))["id"])
    admin.execute("SELECT cancel_appointment(%s, %s)", (world.patient_user, first["id"]))
    second = book(admin, world, make_slot(admin, world, NOW + timedelta(days=4))["id"])
    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        admin.execute("UPDATE appointments SET rescheduled_to = %s WHERE id = %s", (second["id"], first["id"]))
    assert caught.value.diag.constraint_name == "appointments_reschedule_link"
    assert invariant_violations(admin) == []


def test_attended_appointments_hold_their_slot(admin, world):
    """completed and no_show keep the slot booked; the check counts them as holders."""
    slot = make_slot(admin, world, NOW + timedelta(days=1))
    other = make_slot(admin, world, NOW + timedelta(days=2))
    first = book(admin, world, slot["id"])
    second = book(admin, world, other["id"], patient="other_patient")
    admin.execute("SELECT set_booking_clock(%s)", (NOW + timedelta(days=3),))
    admin.execute("SELECT complete_appointment(%s, %s)", (world.practitioner_user, first["id"]))
    admin.execute("SELECT mark_no_show(%s, %s)", (world.practitioner_user, second["id"]))
    assert invariant_violations(admin) == []
    admin.execute("SET session_replication_role = replica")
    # A completed appointment whose slot says available could be booked over.
    admin.execute("UPDATE availability_slots SET status = 'available' WHERE id = %s", (slot["id"],))
    rows = invariant_violations(admin)
    assert kinds(rows) == {("booked_appointment_on_available_slot", slot["id"], first["id"])}
    assert rows[0]["detail"] == "appointment completed, slot status available"
    admin.execute("UPDATE availability_slots SET status = 'booked' WHERE id = %s", (slot["id"],))
    # A booked appointment beside the no-show on one slot is a double booking.
    admin.execute("ALTER TABLE appointments DROP CONSTRAINT appointments_slot_holder_key CASCADE")
    admin.execute(
        "INSERT INTO appointments (slot_id, patient_id, practitioner_id, status, start_time, end_time, booked_at) "
        "SELECT id, %s, practitioner_id, 'booked', start_time, end_time, %s FROM availability_slots WHERE id = %s",
        (world.patient, NOW, other["id"]))
    found = kinds(invariant_violations(admin))
    assert ("several_booked_appointments_per_slot", other["id"], None) in found


def test_reporting_role_may_run_the_check(admin, booked):
    admin.execute("SET ROLE medbook_reporting")
    count = admin.execute("SELECT count(*) AS n FROM check_booking_invariants()").fetchone()
    assert count["n"] == 0
