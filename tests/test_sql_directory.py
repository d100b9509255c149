"""Who am I, the practitioner directory, and slot listings with keyset cursors (SQL level)."""

from __future__ import annotations

import base64
import random
from datetime import UTC, date, datetime, timedelta

from conftest import NOW, add_practitioner, make_slot, set_clock, sqlstate


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Who am I --------------------------------------------------------------------------

def test_me_names_the_profiles_of_the_acting_user(api_conn, admin, world):
    me = api_conn.execute("SELECT * FROM get_me(%s)", (world.practitioner_user,)).fetchone()
    user = admin.execute("SELECT name, email FROM users WHERE id = %s", (world.practitioner_user,)).fetchone()
    assert me == {"user_id": world.practitioner_user, "name": user["name"], "email": user["email"],
                  "patient_id": None, "practitioner_id": world.practitioner}
    patient = api_conn.execute("SELECT * FROM get_me(%s)", (world.patient_user,)).fetchone()
    assert (patient["patient_id"], patient["practitioner_id"]) == (world.patient, None)
    stranger = api_conn.execute("SELECT * FROM get_me(%s)", (world.stranger_user,)).fetchone()
    assert (stranger["patient_id"], stranger["practitioner_id"]) == (None, None)
    admin.execute("INSERT INTO booking.patients (user_id) VALUES (%s)", (world.practitioner_user,))
    both = api_conn.execute("SELECT * FROM get_me(%s)", (world.practitioner_user,)).fetchone()
    assert both["patient_id"] is not None and both["practitioner_id"] == world.practitioner
    with sqlstate("MB401"):
        api_conn.execute("SELECT * FROM get_me(%s)", (10**12,))


# Directory -------------------------------------------------------------------------

def practitioner(api_conn, actor, pid):
    return api_conn.execute("SELECT * FROM get_practitioner(%s, %s)", (actor, pid)).fetchone()


def directory(api_conn, actor, *, specialty=None, available_on=None, tz=None, limit=20, cursor=None):
    return api_conn.execute("SELECT * FROM list_practitioners(%s, %s, %s, %s, %s, %s)",
                            (actor, specialty, available_on, tz, limit, cursor)).fetchall()


def every_page(api_conn, actor, limit, **filters) -> list[list[int]]:
    pages, cursor = [], None
    while True:
        rows = directory(api_conn, actor, limit=limit, cursor=cursor, **filters)
        pages.append([r["id"] for r in rows])
        assert all(r["next_cursor"] is None for r in rows[:-1])
        cursor = rows[-1]["next_cursor"] if rows else None
        if cursor is None:
            return pages
        assert len(rows) == limit


def test_a_practitioners_entry(api_conn, admin, world):
    admin.execute("UPDATE practitioners SET bio = 'Knees.' WHERE id = %s", (world.practitioner,))
    api_conn.execute("SELECT * FROM set_booking_settings(%s, %s, 'Europe/London', NULL)",
                     (world.practitioner_user, world.practitioner))
    entry = practitioner(api_conn, world.patient_user, world.practitioner)
    name = admin.execute("SELECT name FROM users WHERE id = %s", (world.practitioner_user,)).fetchone()["name"]
    assert entry == {"id": world.practitioner, "name": name, "specialty": "Physiotherapy", "bio": "Knees.",
                     "time_zone": "Europe/London", "next_available_start": None}
    make_slot(api_conn, world, NOW + timedelta(minutes=30))
    later = make_slot(api_conn, world, NOW + timedelta(days=2))
    booked = make_slot(api_conn, world, NOW + timedelta(hours=1))
    api_conn.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, booked["id"]))
    assert practitioner(api_conn, world.patient_user, world.practitioner)["next_available_start"] == \
        NOW + timedelta(minutes=30)
    set_clock(admin, NOW + timedelta(minutes=30))  # the first one has started; the booked one is not free
    assert practitioner(api_conn, world.patient_user, world.practitioner)["next_available_start"] == \
        later["start_time"]
    with sqlstate("MB404"):
        practitioner(api_conn, world.patient_user, 10**12)
    with sqlstate("MB401"):
        practitioner(api_conn, 10**12, world.practitioner)


def test_directory_order_filters_and_pages(api_conn, admin, world):
    # world.practitioner and other_practitioner (Physiotherapy) plus four more.
    people = [world.practitioner, world.other_practitioner]
    users = [world.practitioner_user, world.other_practitioner_user]
    for specialty in ("Dermatology", "dermatology", "Physiotherapy", "Dermatology (paediatric)"):
        user, pid = add_practitioner(admin)
        admin.execute("UPDATE practitioners SET specialty = %s WHERE id = %s", (specialty, pid))
        people.append(pid)
        users.append(user)

    def slot(i, start, minutes=30):
        return api_conn.execute("SELECT * FROM create_slot(%s, %s, %s, %s)",
                                (users[i], people[i], start, start + timedelta(minutes=minutes))).fetchone()

    slot(0, utc(2027, 3, 5, 9))
    slot(1, utc(2027, 3, 3, 9))
    slot(2, utc(2027, 3, 3, 9))                      # ties with 1: by id
    slot(3, utc(2027, 3, 2, 8))
    booked = slot(4, utc(2027, 3, 2, 7))             # booked: practitioner 4 has nothing available
    api_conn.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, booked["id"]))
    slot(3, utc(2027, 3, 4, 10))
    # people[5] has no slots at all.

    order = [people[3], people[1], people[2], people[0], people[4], people[5]]
    rows = directory(api_conn, world.patient_user)
    assert [r["id"] for r in rows] == order
    assert [r["next_available_start"] for r in rows] == [utc(2027, 3, 2, 8), utc(2027, 3, 3, 9),
                                                         utc(2027, 3, 3, 9), utc(2027, 3, 5, 9), None, None]
    assert all(r["next_cursor"] is None for r in rows)
    for limit in (1, 2, 4, 5, 6):
        pages = every_page(api_conn, world.patient_user, limit)
        assert [pid for page in pages for pid in page] == order, limit

    # Specialty: exact, any case.
    assert [r["id"] for r in directory(api_conn, world.patient_user, specialty="DERMATOLOGY")] == [
        people[3], people[2]]
    assert directory(api_conn, world.patient_user, specialty="Dermatolog") == []
    assert [r["id"] for r in directory(api_conn, world.patient_user, specialty="physiotherapy")] == [
        people[1], people[0], people[4]]

    # available_on: an available, not yet started slot on that local date.
    assert [r["id"] for r in directory(api_conn, world.patient_user, available_on=date(2027, 3, 3))] == [
        people[1], people[2]]
    assert [r["id"] for r in directory(api_conn, world.patient_user, available_on=date(2027, 3, 4))] == [
        people[3]]  # ordered by the next start (2 March), not by the slot on the 4th
    assert directory(api_conn, world.patient_user, available_on=date(2027, 3, 2), specialty="physiotherapy") == []
    # In Tokyo, 3 March 09:00 UTC is 18:00 on the 3rd; 2 March 08:00 UTC is 17:00 on the 2nd.
    assert [r["id"] for r in directory(api_conn, world.patient_user, available_on=date(2027, 3, 2),
                                       tz="Asia/Tokyo")] == [people[3]]
    # In Honolulu (UTC-10) 3 March 09:00 UTC is 23:00 on the 2nd.
    assert [r["id"] for r in directory(api_conn, world.patient_user, available_on=date(2027, 3, 2),
                                       tz="Pacific/Honolulu")] == [people[1], people[2]]

    # Each practitioner's own zone: people[0] in Auckland (UTC+13): 5 March 09:00 UTC is 22:00 there.
    api_conn.execute("SELECT * FROM set_booking_settings(%s, %s, 'Pacific/Auckland', NULL)",
                     (users[0], people[0]))
    assert [r["id"] for r in directory(api_conn, world.patient_user, available_on=date(2027, 3, 5))] == [
        people[0]]
    assert directory(api_conn, world.patient_user, available_on=date(2027, 3, 6)) == []
    # In Kiritimati (UTC+14) 4 March 10:00 UTC is already 5 March, 00:00.
    assert [r["id"] for r in directory(api_conn, world.patient_user, available_on=date(2027, 3, 5),
                                       tz="Pacific/Kiritimati")] == [people[3], people[0]]

    set_clock(admin, utc(2027, 3, 3, 9))  # the slots at 09:00 on the 3rd have started
    assert directory(api_conn, world.patient_user, available_on=date(2027, 3, 3)) == []
    assert [r["id"] for r in directory(api_conn, world.patient_user)][:2] == [people[3], people[0]]


def test_directory_bad_input(api_conn, world):
    for limit in (0, 501, None):
        with sqlstate("MB400"):
            directory(api_conn, world.patient_user, limit=limit)
    with sqlstate("MB400"):
        directory(api_conn, world.patient_user, available_on=date(2027, 3, 3), tz="Mars/Olympus")
    for specialty in ("x" * 201, ""):
        with sqlstate("MB400"):
            directory(api_conn, world.patient_user, specialty=specialty)
    with sqlstate("MB401"):
        directory(api_conn, 10**12)


def tampered(cursor: str) -> list[str]:
    raw = base64.urlsafe_b64decode(cursor)
    flipped = [bytes([*raw[:i], raw[i] ^ 1, *raw[i + 1:]]) for i in (0, 5, 12, 20, 32)]
    variants = [base64.urlsafe_b64encode(b).decode() for b in flipped] + [
        cursor[:-1], cursor + "A", cursor[:-1] + ("A" if cursor[-1] != "A" else "B"), "", "=" * 44,
        cursor.replace("-", "+").replace("_", "/"), "A" * 44, cursor[:43] + "\u00e9", "'; DROP TABLE users; --",
        base64.urlsafe_b64encode(raw[:17] + bytes(16)).decode(),                 # the position, no MAC
        base64.urlsafe_b64encode(raw[:17] + raw[17:][::-1]).decode()]
    return [v for v in variants if v != cursor]


def test_directory_cursors_are_signed_and_bound_to_their_filters(api_conn, admin, world):
    for _ in range(3):
        add_practitioner(admin)
    rows = directory(api_conn, world.patient_user, limit=2)
    cursor = rows[-1]["next_cursor"]
    assert cursor and len(cursor) == 44
    assert [r["id"] for r in directory(api_conn, world.patient_user, limit=2, cursor=cursor)]
    for forged in tampered(cursor):
        with sqlstate("MBC01"):
            directory(api_conn, world.patient_user, limit=2, cursor=forged)
    with sqlstate("MBC01"):  # same cursor, other filters
        directory(api_conn, world.patient_user, limit=2, cursor=cursor, specialty="physiotherapy")
    # A new key invalidates every cursor handed out.
    admin.execute("UPDATE booking.cursor_key SET secret = decode(repeat('ab', 32), 'hex')")
    with sqlstate("MBC01"):
        directory(api_conn, world.patient_user, limit=2, cursor=cursor)


def test_directory_walk_and_candidate_phases_agree(api_conn, admin, world):
    """2,500 early slots of one practitioner make the walk give up; the fallback must give the same pages."""
    busy_user, busy = world.practitioner_user, world.practitioner
    starts = [utc(2027, 3, 2) + timedelta(minutes=10 * i) for i in range(2500)]
    for chunk in range(0, 2500, 500):
        api_conn.execute("SELECT * FROM create_slots(%s, %s, %s, %s)",
                         (busy_user, busy, starts[chunk:chunk + 500],
                          [s + timedelta(minutes=10) for s in starts[chunk:chunk + 500]]))
    rare = []
    for i in range(3):
        user, pid = add_practitioner(admin)
        admin.execute("UPDATE practitioners SET specialty = 'Rare' WHERE id = %s", (pid,))
        api_conn.execute("SELECT * FROM create_slot(%s, %s, %s, %s)",
                         (user, pid, utc(2027, 3, 25, 9 + i), utc(2027, 3, 25, 10 + i)))
        rare.append(pid)
    user, idle = add_practitioner(admin)
    admin.execute("UPDATE practitioners SET specialty = 'Rare' WHERE id = %s", (idle,))
    assert every_page(api_conn, world.patient_user, 2, specialty="rare") == [rare[:2], [rare[2], idle]]
    assert every_page(api_conn, world.patient_user, 2, available_on=date(2027, 3, 25)) == [rare[:2], [rare[2]]]
    everyone = [pid for page in every_page(api_conn, world.patient_user, 2) for pid in page]
    assert everyone == [busy, *rare, world.other_practitioner, idle]


def test_directory_pages_match_a_plain_query_on_random_data(api_conn, admin, world):
    rng = random.Random(9)
    people = [(world.practitioner_user, world.practitioner), (world.other_practitioner_user,
                                                             world.other_practitioner)]
    people += [add_practitioner(admin) for _ in range(10)]
    zones = ["UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Pacific/Auckland"]
    for user, pid in people:
        admin.execute("UPDATE practitioners SET specialty = %s WHERE id = %s", (rng.choice(["A", "b", "B"]), pid))
        api_conn.execute("SELECT * FROM set_booking_settings(%s, %s, %s, NULL)", (user, pid, rng.choice(zones)))
        for _ in range(rng.randrange(0, 6)):
            start = NOW + timedelta(minutes=30 * rng.randrange(-20, 300))
            try:
                admin.execute("SELECT * FROM create_slot(%s, %s, %s, %s)",
                              (user, pid, start, start + timedelta(minutes=30)))
            except Exception:  # noqa: S110 (past or overlapping: fine, the data is random)
                pass
    expected_sql = """
        SELECT p.id FROM practitioners p
          LEFT JOIN LATERAL (SELECT min(s.start_time) AS nxt FROM booking.availability_slots s
                              WHERE s.practitioner_id = p.id AND s.status = 'available' AND s.start_time > %(now)s) n
               ON true
         WHERE (%(sp)s::text IS NULL OR lower(p.specialty) = lower(%(sp)s))
           AND (%(day)s::date IS NULL OR EXISTS (
                 SELECT 1 FROM booking.availability_slots s
                   JOIN booking.practitioner_booking_settings b ON b.practitioner_id = s.practitioner_id
                  WHERE s.practitioner_id = p.id AND s.status = 'available' AND s.start_time > %(now)s
                    AND (s.start_time AT TIME ZONE coalesce(%(tz)s, b.time_zone))::date = %(day)s))
         ORDER BY n.nxt NULLS LAST, p.id"""
    for specialty in (None, "a", "B"):
        for day, tz in ((None, None), (NOW.date(), None), ((NOW + timedelta(days=2)).date(), None),
                        ((NOW + timedelta(days=1)).date(), "Asia/Tokyo")):
            expected = [r["id"] for r in admin.execute(expected_sql, {"now": NOW, "sp": specialty, "day": day,
                                                                      "tz": tz})]
            for limit in (1, 3, 20):
                pages = every_page(api_conn, world.patient_user, limit, specialty=specialty, available_on=day, tz=tz)
                assert [pid for page in pages for pid in page] == expected, (specialty, day, tz, limit)


# Slot listings ---------------------------------------------------------------------

def list_slots(conn, actor, pid, *, date_=None, start=None, end=None, tz=None, status="available", limit=100,
               cursor=None):
    return conn.execute("SELECT * FROM list_slots(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (actor, pid, date_, start, end, tz, status, limit, cursor)).fetchall()


def all_pages(conn, actor, pid, limit, **kw) -> list[list[int]]:
    pages, cursor = [], None
    while True:
        rows = list_slots(conn, actor, pid, limit=limit, cursor=cursor, **kw)
        pages.append([r["id"] for r in rows])
        cursor = rows[-1]["next_cursor"] if rows else None
        if cursor is None:
            return pages


def test_list_slots_windows(api_conn, admin, world):
    api_conn.execute("SELECT * FROM set_booking_settings(%s, %s, 'America/New_York', NULL)",
                     (world.practitioner_user, world.practitioner))
    # Local (New York, EST until 14 March) 2 March 09:00 = 14:00 UTC, etc.
    ids = {label: make_slot(api_conn, world, at)["id"] for label, at in [
        ("2 Mar 09:00", utc(2027, 3, 2, 14)), ("2 Mar 23:30", utc(2027, 3, 3, 4, 30)),
        ("3 Mar 00:00", utc(2027, 3, 3, 5)), ("31 Mar 12:00", utc(2027, 3, 31, 16)),
        ("1 Apr 12:00", utc(2027, 4, 1, 16))]}
    p, who = world.practitioner, world.patient_user
    assert [r["id"] for r in list_slots(api_conn, who, p, date_=date(2027, 3, 2))] == [
        ids["2 Mar 09:00"], ids["2 Mar 23:30"]]
    assert [r["id"] for r in list_slots(api_conn, who, p, date_=date(2027, 3, 3), tz="UTC")] == [
        ids["2 Mar 23:30"], ids["3 Mar 00:00"]]
    assert [r["id"] for r in list_slots(api_conn, who, p, start=date(2027, 3, 2), end=date(2027, 3, 31))] == [
        ids["2 Mar 09:00"], ids["2 Mar 23:30"], ids["3 Mar 00:00"], ids["31 Mar 12:00"]]
    assert len(list_slots(api_conn, who, p)) == 5
    for kwargs in ({"date_": date(2027, 3, 2), "start": date(2027, 3, 2), "end": date(2027, 3, 3)},
                   {"date_": date(2027, 3, 2), "end": date(2027, 3, 3)},
                   {"start": date(2027, 3, 2)}, {"end": date(2027, 3, 2)},
                   {"start": date(2027, 3, 3), "end": date(2027, 3, 2)},
                   {"start": date(2027, 3, 1), "end": date(2027, 4, 1)},      # 32 days
                   {"start": date(2027, 3, 1), "end": date(2028, 4, 4)},      # 400 days
                   {"status": "cancelled"}, {"status": ""}, {"limit": 0}, {"limit": 501},
                   {"tz": "Nowhere/Land"}):
        with sqlstate("MB400"):
            list_slots(api_conn, who, p, **kwargs)
    with sqlstate("MB404"):
        list_slots(api_conn, who, 10**12)


def test_booked_and_all_are_the_practitioners_view(api_conn, world):
    free = make_slot(api_conn, world, NOW + timedelta(days=1))
    taken = make_slot(api_conn, world, NOW + timedelta(days=2))
    appointment = api_conn.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, taken["id"])).fetchone()
    mine = world.practitioner_user
    assert [(r["id"], r["status"], r["appointment_id"]) for r in list_slots(api_conn, mine, world.practitioner,
                                                                            status="all")] == [
        (free["id"], "available", None), (taken["id"], "booked", appointment["id"])]
    assert [r["id"] for r in list_slots(api_conn, mine, world.practitioner, status="booked")] == [taken["id"]]
    assert [r["id"] for r in list_slots(api_conn, world.patient_user, world.practitioner)] == [free["id"]]
    for actor in (world.patient_user, world.other_practitioner_user, world.stranger_user):
        for status in ("booked", "all"):
            with sqlstate("MB403"):
                list_slots(api_conn, actor, world.practitioner, status=status)


def test_pages_neither_skip_nor_repeat_while_slots_come_and_go(api_conn, admin, world):
    day = utc(2027, 3, 10, 8)
    made = [make_slot(api_conn, world, day + timedelta(minutes=30 * i)) for i in range(0, 40, 2)]  # every hour
    seen, cursor, inserted = [], None, []
    for page in range(100):
        rows = list_slots(api_conn, world.patient_user, world.practitioner, limit=3, cursor=cursor)
        seen += [r["id"] for r in rows]
        cursor = rows[-1]["next_cursor"] if rows else None
        if cursor is None:
            break
        # Between pages: a slot before the position (must not appear), one after it (must appear),
        # and one of the not yet seen slots is deleted (must not appear).
        last = rows[-1]["start_time"]
        before = make_slot(api_conn, world, day - timedelta(hours=page + 1), minutes=30)
        after = make_slot(api_conn, world, last + timedelta(minutes=30), minutes=30)
        inserted.append((before["id"], after["id"]))
        unseen = [m for m in made if m["start_time"] > last + timedelta(hours=1) and m["id"] not in seen]
        if unseen and page % 3 == 0:
            api_conn.execute("SELECT * FROM delete_slot(%s, %s)", (world.practitioner_user, unseen[-1]["id"]))
            made.remove(unseen[-1])
    assert len(seen) == len(set(seen)), "no slot twice"
    assert not {b for b, _ in inserted} & set(seen), "nothing from behind the position"
    assert {a for _, a in inserted} <= set(seen), "every slot inserted ahead of the position"
    assert {m["id"] for m in made} <= set(seen), "every slot that stayed"
    starts = admin.execute("SELECT id FROM booking.availability_slots WHERE id = ANY(%s) ORDER BY start_time",
                           (seen,)).fetchall()
    assert [r["id"] for r in starts] == seen, "in start order"


def test_slot_cursors_are_signed_and_bound(api_conn, world):
    for i in range(5):
        make_slot(api_conn, world, NOW + timedelta(days=1, hours=i))
    rows = list_slots(api_conn, world.practitioner_user, world.practitioner, limit=2)
    cursor = rows[-1]["next_cursor"]
    assert [len(p) for p in all_pages(api_conn, world.practitioner_user, world.practitioner, 2)] == [2, 2, 1]
    for forged in tampered(cursor):
        with sqlstate("MBC01"):
            list_slots(api_conn, world.practitioner_user, world.practitioner, limit=2, cursor=forged)
    for other in ({"status": "all"}, {"start": NOW.date(), "end": NOW.date() + timedelta(days=3)},
                  {"date_": (NOW + timedelta(days=1)).date()}):
        with sqlstate("MBC01"):
            list_slots(api_conn, world.practitioner_user, world.practitioner, limit=2, cursor=cursor, **other)
    with sqlstate("MBC01"):
        list_slots(api_conn, world.practitioner_user, world.other_practitioner, limit=2, cursor=cursor)
    # The limit may change from page to page.
    assert len(list_slots(api_conn, world.practitioner_user, world.practitioner, limit=10, cursor=cursor)) == 3

