"""The functions the FHIR facade calls (db/functions/120-139), at the SQL level, as medbook_api.

Searches: who may see what, filters, the half-open start range, keyset pages
and totals. Writes: book_slot_expecting() and replace_appointment() decide with
book_slot() and cancel_appointment() and refuse anything else, changing nothing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import NOW, invariant_violations, make_slot, set_clock, sqlstate

START = NOW + timedelta(days=3)


def search_slots(conn, actor, practitioner, statuses=None, start_from=None, start_before=None, limit=100,
                 cursor=None):
    return conn.execute("SELECT * FROM search_slots(%s, %s, %s, %s, %s, %s, %s)",
                        (actor, practitioner, statuses, start_from, start_before, limit, cursor)).fetchall()


def search_appointments(conn, actor, patient=None, practitioner=None, statuses=None, start_from=None,
                        start_before=None, limit=100, cursor=None):
    return conn.execute("SELECT * FROM search_appointments(%s, %s, %s, %s, %s, %s, %s, %s)",
                        (actor, patient, practitioner, statuses, start_from, start_before, limit,
                         cursor)).fetchall()


def ids(rows):
    return [row["id"] for row in rows if row["id"] is not None]


def book(conn, actor, slot_id):
    return conn.execute("SELECT * FROM book_slot(%s, %s)", (actor, slot_id)).fetchone()


def counts(admin):
    return admin.execute("SELECT (SELECT count(*) FROM appointments) AS appointments, "
                         "(SELECT count(*) FROM appointment_history) AS history, "
                         "(SELECT count(*) FROM availability_slots WHERE status = 'booked') AS booked").fetchone()


@pytest.fixture
def slots(api_conn, world):
    """Five future slots of the practitioner an hour apart; the second is booked by the patient."""
    made = [make_slot(api_conn, world, START + timedelta(hours=i)) for i in range(5)]
    book(api_conn, world.patient_user, made[1]["id"])
    return [slot["id"] for slot in made]


# search_slots -------------------------------------------------------------------

def test_anyone_sees_available_slots_and_only_the_practitioner_sees_booked_ones(api_conn, world, slots):
    everyone = [world.patient_user, world.other_patient_user, world.other_practitioner_user, world.stranger_user]
    for actor in everyone:
        assert ids(search_slots(api_conn, actor, world.practitioner)) == [slots[0], *slots[2:]]
        assert ids(search_slots(api_conn, actor, world.practitioner, ["available"])) == [slots[0], *slots[2:]]
        with sqlstate("MB403"):
            search_slots(api_conn, actor, world.practitioner, ["booked"])
        with sqlstate("MB403"):
            search_slots(api_conn, actor, world.practitioner, ["available", "booked"])
    assert ids(search_slots(api_conn, world.practitioner_user, world.practitioner)) == slots
    assert ids(search_slots(api_conn, world.practitioner_user, world.practitioner, ["booked"])) == [slots[1]]


def test_slot_search_range_is_half_open_and_skips_started_slots(admin, api_conn, world, slots):
    rows = search_slots(api_conn, world.practitioner_user, world.practitioner,
                        start_from=START + timedelta(hours=1), start_before=START + timedelta(hours=3))
    assert ids(rows) == slots[1:3]
    assert rows[0]["total"] == 2 and [row["next_cursor"] for row in rows] == [None, None]
    set_clock(admin, START + timedelta(hours=2))  # slots 0-2 have started
    assert ids(search_slots(api_conn, world.practitioner_user, world.practitioner)) == slots[3:]


def test_slot_search_pages_by_keyset_with_the_total_on_every_page(api_conn, world, slots):
    first = search_slots(api_conn, world.practitioner_user, world.practitioner, limit=2)
    assert ids(first) == slots[:2] and {row["total"] for row in first} == {5}
    assert first[0]["next_cursor"] is None and first[1]["next_cursor"]   # on the last row of a page
    second = search_slots(api_conn, world.practitioner_user, world.practitioner, limit=2,
                          cursor=first[-1]["next_cursor"])
    assert ids(second) == slots[2:4] and second[-1]["next_cursor"]
    last = search_slots(api_conn, world.practitioner_user, world.practitioner, limit=2,
                        cursor=second[-1]["next_cursor"])
    assert ids(last) == slots[4:] and last[-1]["next_cursor"] is None and last[0]["total"] == 5


def test_a_slot_cursor_resumes_only_its_own_search(api_conn, world, slots):
    cursor = search_slots(api_conn, world.practitioner_user, world.practitioner, limit=2)[-1]["next_cursor"]
    with sqlstate("MBC01"):
        search_slots(api_conn, world.practitioner_user, world.practitioner, ["available"], limit=2, cursor=cursor)
    with sqlstate("MBC01"):
        altered = cursor[:-2] + ("BB" if cursor.endswith("AA") else "AA")   # never the cursor itself
        search_slots(api_conn, world.practitioner_user, world.practitioner, limit=2, cursor=altered)
    with sqlstate("MBC01"):
        search_slots(api_conn, world.practitioner_user, world.practitioner, limit=2,
                     start_from=START, cursor=cursor)


def test_an_empty_page_still_carries_the_total(api_conn, world, slots):
    rows = search_slots(api_conn, world.patient_user, world.practitioner, start_from=START + timedelta(days=30))
    assert len(rows) == 1 and rows[0]["id"] is None and rows[0]["total"] == 0 and rows[0]["next_cursor"] is None
    rows = search_slots(api_conn, world.patient_user, world.practitioner, [])
    assert ids(rows) == [] and rows[0]["total"] == 0


@pytest.mark.parametrize("args, state", [
    ({"statuses": ["free"]}, "MB400"),
    ({"limit": 0}, "MB400"),
    ({"limit": 501}, "MB400"),
    ({"cursor": "not-a-cursor"}, "MBC01"),
])
def test_slot_search_refuses_bad_arguments(api_conn, world, slots, args, state):
    with sqlstate(state):
        search_slots(api_conn, world.practitioner_user, world.practitioner, **args)


def test_slot_search_needs_a_user_and_a_practitioner(api_conn, world):
    with sqlstate("MB401"):
        search_slots(api_conn, 999_999_999, world.practitioner)
    with sqlstate("MB404"):
        search_slots(api_conn, world.patient_user, 999_999_999)
    with sqlstate("MB404"):
        search_slots(api_conn, world.patient_user, None)


# search_appointments -----------------------------------------------------------

@pytest.fixture
def appointments(api_conn, world, slots):
    """Three appointments of the patient with the practitioner: booked, cancelled, booked."""
    existing = ids(search_appointments(api_conn, world.patient_user, patient=world.patient))  # the slots fixture's
    cancelled = book(api_conn, world.patient_user, slots[2])["id"]
    api_conn.execute("SELECT cancel_appointment(%s, %s, 'moved')", (world.patient_user, cancelled))
    later = book(api_conn, world.patient_user, slots[4])["id"]
    return [*existing, cancelled, later]


def test_patients_and_practitioners_search_their_own_appointments(api_conn, world, appointments):
    assert ids(search_appointments(api_conn, world.patient_user, patient=world.patient)) == appointments
    assert ids(search_appointments(api_conn, world.practitioner_user, practitioner=world.practitioner)) \
        == appointments
    assert ids(search_appointments(api_conn, world.patient_user, patient=world.patient,
                                   practitioner=world.other_practitioner)) == []
    rows = search_appointments(api_conn, world.patient_user, patient=world.patient, statuses=["cancelled"])
    assert ids(rows) == [appointments[1]] and rows[0]["cancellation_reason"] == "moved"
    rows = search_appointments(api_conn, world.patient_user, patient=world.patient,
                               start_from=START + timedelta(hours=2), start_before=START + timedelta(hours=4))
    assert ids(rows) == [appointments[1]]


@pytest.mark.parametrize("actor, patient, practitioner, state", [
    ("other_patient_user", "patient", None, "MB403"),
    ("practitioner_user", "patient", None, "MB403"),      # a practitioner searches by practitioner
    ("patient_user", None, "practitioner", "MB403"),
    ("other_practitioner_user", None, "practitioner", "MB403"),
    ("stranger_user", "patient", None, "MB403"),
    ("patient_user", None, None, "MB400"),
])
def test_appointment_search_is_restricted_like_the_lists(api_conn, world, appointments, actor, patient,
                                                         practitioner, state):
    with sqlstate(state):
        search_appointments(api_conn, getattr(world, actor), patient=patient and getattr(world, patient),
                            practitioner=practitioner and getattr(world, practitioner))


def test_appointment_search_refuses_unknown_ids_and_statuses(api_conn, world, appointments):
    with sqlstate("MB404"):
        search_appointments(api_conn, world.patient_user, patient=999_999_999)
    with sqlstate("MB404"):
        search_appointments(api_conn, world.practitioner_user, practitioner=999_999_999)
    with sqlstate("MB400"):
        search_appointments(api_conn, world.patient_user, patient=world.patient, statuses=["fulfilled"])
    assert ids(search_appointments(api_conn, world.patient_user, patient=world.patient,
                                   statuses=["completed", "no_show"])) == []


def test_appointment_search_pages(api_conn, world, appointments):
    first = search_appointments(api_conn, world.patient_user, patient=world.patient, limit=2)
    assert ids(first) == appointments[:2] and first[0]["total"] == 3 and first[-1]["next_cursor"]
    rest = search_appointments(api_conn, world.patient_user, patient=world.patient, limit=2,
                               cursor=first[-1]["next_cursor"])
    assert ids(rest) == appointments[2:] and rest[-1]["next_cursor"] is None
    with sqlstate("MBC01"):  # another search: the practitioner's
        search_appointments(api_conn, world.practitioner_user, practitioner=world.practitioner, limit=2,
                            cursor=first[-1]["next_cursor"])


# get_patient -------------------------------------------------------------------

def test_a_patient_is_read_by_themself_and_their_practitioners(api_conn, world, appointments):
    me = api_conn.execute("SELECT * FROM get_patient(%s, %s)", (world.patient_user, world.patient)).fetchone()
    assert me["id"] == world.patient and me["name"].startswith("User ") and me["email"].endswith("@example.test")
    seen = api_conn.execute("SELECT * FROM get_patient(%s, %s)", (world.practitioner_user, world.patient)).fetchone()
    assert seen == me
    for actor in ("other_patient_user", "other_practitioner_user", "stranger_user"):
        with sqlstate("MB403"):
            api_conn.execute("SELECT * FROM get_patient(%s, %s)", (getattr(world, actor), world.patient))
    with sqlstate("MB404"):
        api_conn.execute("SELECT * FROM get_patient(%s, %s)", (world.patient_user, 999_999_999))


# book_slot_expecting -----------------------------------------------------------

def expect_booking(conn, actor, slot_id, patient, practitioner=None, start=None, end=None):
    return conn.execute("SELECT * FROM book_slot_expecting(%s, %s, %s, %s, %s, %s)",
                        (actor, slot_id, patient, practitioner, start, end)).fetchone()


def test_booking_as_described_books_through_book_slot(admin, api_conn, world):
    slot = make_slot(api_conn, world, START)
    made = expect_booking(api_conn, world.patient_user, slot["id"], world.patient, world.practitioner,
                          slot["start_time"], slot["end_time"])
    assert made["status"] == "booked" and made["slot_id"] == slot["id"] and made["patient_id"] == world.patient
    with sqlstate("MBS01"):
        expect_booking(api_conn, world.other_patient_user, slot["id"], world.other_patient)
    assert invariant_violations(admin) == []


@pytest.mark.parametrize("change, state", [
    ({"patient": "other_patient"}, "MB403"),
    ({"practitioner": "other_practitioner"}, "MBF01"),
    ({"start": timedelta(minutes=5)}, "MBF01"),
    ({"end": timedelta(minutes=-5)}, "MBF01"),
])
def test_a_booking_described_wrongly_books_nothing(admin, api_conn, world, change, state):
    slot = make_slot(api_conn, world, START)
    before = counts(admin)
    patient = getattr(world, change.get("patient", "patient"))
    practitioner = getattr(world, change.get("practitioner", "practitioner"))
    start = slot["start_time"] + change.get("start", timedelta(0))
    end = slot["end_time"] + change.get("end", timedelta(0))
    with sqlstate(state):
        expect_booking(api_conn, world.patient_user, slot["id"], patient, practitioner, start, end)
    assert counts(admin) == before
    assert expect_booking(api_conn, world.patient_user, slot["id"], world.patient)["status"] == "booked"


def test_a_booking_cannot_be_described_by_a_non_patient(api_conn, world):
    slot = make_slot(api_conn, world, START)
    with sqlstate("MB403"):
        expect_booking(api_conn, world.practitioner_user, slot["id"], world.patient)


# replace_appointment -----------------------------------------------------------

def replace(conn, actor, stored, **changes):
    values = {"status": stored["status"], "slot_id": stored["slot_id"], "patient_id": stored["patient_id"],
              "practitioner_id": stored["practitioner_id"], "start_time": stored["start_time"],
              "end_time": stored["end_time"], "reason": stored["cancellation_reason"], **changes}
    return conn.execute("SELECT * FROM replace_appointment(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (actor, stored["id"], values["status"], values["slot_id"], values["patient_id"],
                         values["practitioner_id"], values["start_time"], values["end_time"],
                         values["reason"])).fetchone()


@pytest.fixture
def booked(api_conn, world):
    return book(api_conn, world.patient_user, make_slot(api_conn, world, START)["id"])


def test_a_replacement_that_changes_nothing_returns_the_appointment(admin, api_conn, world, booked):
    before = counts(admin)
    assert replace(api_conn, world.patient_user, booked) == booked
    assert counts(admin) == before


def test_a_replacement_cancels_through_cancel_appointment(admin, api_conn, world, booked):
    cancelled = replace(api_conn, world.practitioner_user, booked, status="cancelled", reason="  ill ")
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_by"] == world.practitioner_user
    assert cancelled["cancellation_reason"] == "ill"
    assert admin.execute("SELECT status FROM availability_slots WHERE id = %s",
                         (booked["slot_id"],)).fetchone()["status"] == "available"
    assert replace(api_conn, world.patient_user, cancelled) == cancelled   # sent again: unchanged
    with sqlstate("MBF01"):
        replace(api_conn, world.patient_user, cancelled, reason="other")
    with sqlstate("MBF01"):
        replace(api_conn, world.patient_user, cancelled, status="booked", reason=None)


def test_a_replacement_keeps_the_cancellation_window(admin, api_conn, world, booked):
    set_clock(admin, booked["start_time"] - timedelta(hours=1))
    with sqlstate("MBA02"):
        replace(api_conn, world.patient_user, booked, status="cancelled")
    assert replace(api_conn, world.practitioner_user, booked, status="cancelled")["status"] == "cancelled"


@pytest.mark.parametrize("changes", [
    {"slot_id": None},
    {"patient_id": None},
    {"practitioner_id": None},
    {"start_time": START + timedelta(hours=1)},
    {"end_time": None},
    {"status": "cancelled", "start_time": START + timedelta(hours=1)},
    {"reason": "no change of status"},
    {"status": "completed"},
    {"status": None},
])
def test_any_other_replacement_is_refused_and_changes_nothing(admin, api_conn, world, booked, changes):
    before = counts(admin)
    with sqlstate("MBF01"):
        replace(api_conn, world.patient_user, booked, **changes)
    assert counts(admin) == before
    assert admin.execute("SELECT status FROM appointments WHERE id = %s", (booked["id"],)).fetchone()["status"] \
        == "booked"


def test_a_replacement_is_refused_to_strangers(api_conn, world, booked):
    for actor in ("other_patient_user", "other_practitioner_user", "stranger_user"):
        with sqlstate("MB403"):
            replace(api_conn, getattr(world, actor), booked, status="cancelled")
    with sqlstate("MB404"):
        replace(api_conn, world.patient_user, {**booked, "id": 999_999_999})

