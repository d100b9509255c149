"""The event log: one event per change of booking state, in the change's transaction.

- every change made through the functions, and every change made directly in
  psql, appends its event; a rolled-back change leaves none;
- the payload is the resource exactly as the REST API shows it;
- a reader's cursor never skips an event that commits late (the test holds a
  writing transaction open across the reader's polls, then runs many writers
  against a polling reader);
- NOTIFY booking_events wakes listeners when a change commits (once per
  transaction, payload its first event id; nothing on rollback), unless the
  owner switched that off; the webhook workers' relay also tells listeners
  which events became readable;
- medbook_events may read events and nothing else; the purge keeps what
  deliveries still need.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from conftest import NOW, World, bearer, iso, make_slot, set_clock, sqlstate, without_search_path
from psycopg.rows import dict_row
from test_privileges import INSUFFICIENT_PRIVILEGE, login_role, refused

from api.webhooks import Settings, Worker

EVENT_IDS_PER_TRANSACTION = 2**20


def events(conn: psycopg.Connection, after: int = 0) -> list[dict]:
    """Every event after `after`, straight from the table (as the owner), in id order."""
    return conn.execute("SELECT * FROM booking.events WHERE id > %s ORDER BY id", (after,)).fetchall()


def last_event_id(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) AS id FROM booking.events").fetchone()["id"]


def read(conn: psycopg.Connection, after: int, limit: int = 500) -> list[dict]:
    return conn.execute("SELECT * FROM booking_api.read_booking_events(%s, %s)", (after, limit)).fetchall()


def kinds(rows: list[dict]) -> list[tuple]:
    return [(row["type"], row["slot_id"], row["appointment_id"]) for row in rows]


@pytest.fixture
def events_login(admin: psycopg.Connection, db: str) -> Iterator[psycopg.Connection]:
    yield from login_role(admin, db, "medbook_events")


@pytest.fixture
def webhooks_login(admin: psycopg.Connection, db: str) -> Iterator[psycopg.Connection]:
    yield from login_role(admin, db, "medbook_webhooks")


# Every change, every writer ----------------------------------------------------------

def test_each_change_through_the_functions_appends_its_event(admin, api_conn, world: World):
    start = last_event_id(admin)
    slot = make_slot(api_conn, world, NOW + timedelta(days=2))
    moved = api_conn.execute("SELECT * FROM update_slot(%s, %s, %s, %s)",
                             (world.practitioner_user, slot["id"], NOW + timedelta(days=2, hours=1),
                              NOW + timedelta(days=2, hours=2))).fetchone()
    booked = api_conn.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot["id"])).fetchone()
    api_conn.execute("SELECT * FROM cancel_appointment(%s, %s, 'ill')", (world.patient_user, booked["id"]))
    api_conn.execute("SELECT * FROM delete_slot(%s, %s)", (world.practitioner_user, slot["id"]))

    logged = events(admin, start)
    assert kinds(logged) == [("slot.created", slot["id"], None), ("slot.updated", slot["id"], None),
                             ("appointment.booked", slot["id"], booked["id"]),
                             ("appointment.cancelled", slot["id"], booked["id"]),
                             ("slot.deleted", slot["id"], None)]
    assert {row["practitioner_id"] for row in logged} == {world.practitioner}
    assert [row["patient_id"] for row in logged] == [None, None, world.patient, world.patient, None]
    assert all(row["occurred_at"] == NOW for row in logged)
    assert logged[1]["payload"]["start_time"] == iso(moved["start_time"])
    assert logged[3]["payload"]["status"] == "cancelled"
    # A status flip of the slot (booking, cancelling) is the appointment's event, not a slot event.
    assert len(logged) == 5


def test_changes_made_directly_in_psql_append_events(admin, world: World):
    """A DBA (or another service with table rights) writing the tables gets the same events."""
    start = last_event_id(admin)
    slot = admin.execute(
        "INSERT INTO booking.availability_slots (practitioner_id, start_time, end_time) VALUES (%s, %s, %s) "
        "RETURNING *", (world.practitioner, NOW + timedelta(days=3), NOW + timedelta(days=3, minutes=45))).fetchone()
    admin.execute("UPDATE booking.availability_slots SET end_time = end_time + interval '15 minutes' "
                  "WHERE id = %s", (slot["id"],))
    admin.execute("UPDATE booking.availability_slots SET updated_at = now() WHERE id = %s", (slot["id"],))
    with admin.transaction():
        admin.execute("UPDATE booking.availability_slots SET status = 'booked' WHERE id = %s", (slot["id"],))
        appointment = admin.execute(
            "INSERT INTO booking.appointments (slot_id, patient_id, practitioner_id, start_time, end_time, booked_at) "
            "SELECT id, %s, practitioner_id, start_time, end_time, %s FROM booking.availability_slots "
            "WHERE id = %s RETURNING *", (world.patient, NOW, slot["id"])).fetchone()
    with admin.transaction():
        admin.execute("UPDATE booking.appointments SET status = 'cancelled', cancelled_at = %s, cancelled_by = %s "
                      "WHERE id = %s", (NOW, world.practitioner_user, appointment["id"]))
        admin.execute("UPDATE booking.availability_slots SET status = 'available' WHERE id = %s", (slot["id"],))
    admin.execute("DELETE FROM booking.availability_slots WHERE id = %s", (slot["id"],))

    assert kinds(events(admin, start)) == [
        ("slot.created", slot["id"], None), ("slot.updated", slot["id"], None),
        ("appointment.booked", slot["id"], appointment["id"]),
        ("appointment.cancelled", slot["id"], appointment["id"]),
        ("slot.deleted", slot["id"], None)]
    # The cancelled appointment lost its slot (ON DELETE SET NULL): no event of its own.
    assert admin.execute("SELECT slot_id FROM booking.appointments WHERE id = %s",
                         (appointment["id"],)).fetchone()["slot_id"] is None


def test_a_rolled_back_change_leaves_no_event(admin, world: World):
    start = last_event_id(admin)
    with pytest.raises(psycopg.errors.RaiseException), admin.transaction():
        make_slot(admin, world, NOW + timedelta(days=2))
        admin.execute("DO $$ BEGIN RAISE EXCEPTION 'changed my mind'; END $$")
    with admin.transaction():
        kept = make_slot(admin, world, NOW + timedelta(days=4))
        with pytest.raises(psycopg.Error), admin.transaction():  # a savepoint rolled back
            make_slot(admin, world, NOW + timedelta(days=5))
            admin.execute("SELECT 1 / 0")
        other = make_slot(admin, world, NOW + timedelta(days=6))
    assert kinds(events(admin, start)) == [("slot.created", kept["id"], None), ("slot.created", other["id"], None)]
    # The savepoint's event number was taken back and reused: ids stay dense within a transaction.
    first, second = events(admin, start)
    assert second["id"] == first["id"] + 1
    assert first["id"] % EVENT_IDS_PER_TRANSACTION == 0


def test_a_failed_booking_leaves_no_event(admin, api_conn, world: World):
    slot = make_slot(api_conn, world, NOW + timedelta(days=2))
    api_conn.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot["id"]))
    start = last_event_id(admin)
    with sqlstate("MBS01"):
        api_conn.execute("SELECT * FROM book_slot(%s, %s)", (world.other_patient_user, slot["id"]))
    assert events(admin, start) == []


def test_events_are_append_only_and_typed(admin, world: World):
    make_slot(admin, world, NOW + timedelta(days=2))
    event = events(admin)[-1]
    with sqlstate("23000"):
        admin.execute("UPDATE booking.events SET type = 'slot.deleted' WHERE id = %s", (event["id"],))
    with sqlstate("MBE01"):
        admin.execute("INSERT INTO booking.events (type, occurred_at, payload) VALUES ('slot.exploded', now(), '{}')")
    with sqlstate("23514"):
        admin.execute("INSERT INTO booking.events (type, occurred_at, payload) VALUES ('slot.created', now(), '[]')")


def test_a_transaction_cannot_write_more_events_than_its_id_range(db, world: World):
    """Ids are xid * 2^20 + n: the 2^20th event of one transaction is refused, not given a foreign id."""
    with psycopg.connect(db, row_factory=dict_row) as conn:
        base = conn.execute("SELECT pg_current_xact_id()::text::bigint * 1048576 AS b").fetchone()["b"]
        conn.execute("ALTER TABLE booking.events DISABLE TRIGGER events_assign_id")
        conn.execute("INSERT INTO booking.events (id, type, occurred_at, payload) VALUES (%s, 'slot.created', now(), "
                     "'{}')", (base + EVENT_IDS_PER_TRANSACTION - 1,))
        conn.execute("ALTER TABLE booking.events ENABLE TRIGGER events_assign_id")
        with sqlstate("54000"):
            make_slot(conn, world, NOW + timedelta(days=2))
        conn.rollback()



def test_event_ids_count_on_in_a_transaction_and_after_a_rolled_back_savepoint(db, world: World):
    """Later events continue from the transaction-local booking.event_seq (0017): consecutive ids, the
    count rolled back with a savepoint, and a value set by hand outside the transaction's range not trusted."""
    with psycopg.connect(db, row_factory=dict_row) as conn:
        base = conn.execute("SELECT pg_current_xact_id()::text::bigint * 1048576 AS b").fetchone()["b"]
        ids = lambda: [r["id"] for r in conn.execute(  # noqa: E731
            "SELECT id FROM booking.events WHERE id >= %s ORDER BY id", (base,)).fetchall()]
        make_slot(conn, world, NOW + timedelta(days=2))
        make_slot(conn, world, NOW + timedelta(days=2, hours=1))
        assert ids() == [base, base + 1]
        conn.execute("SAVEPOINT s")
        make_slot(conn, world, NOW + timedelta(days=2, hours=2))
        conn.execute("ROLLBACK TO SAVEPOINT s")
        make_slot(conn, world, NOW + timedelta(days=2, hours=3))
        assert ids() == [base, base + 1, base + 2]
        for value in ("5", "not a number", str(base + EVENT_IDS_PER_TRANSACTION)):
            conn.execute("SELECT set_config('booking.event_seq', %s, true)", (value,))
            make_slot(conn, world, NOW + timedelta(days=3, minutes=len(ids()) * 30))
        assert ids() == [base + n for n in range(6)]
        conn.rollback()

# The payload is the REST resource ------------------------------------------------------

def test_payloads_equal_the_rest_json(client, admin, world: World):
    practitioner, patient = bearer(world.practitioner_user), bearer(world.patient_user)
    start = last_event_id(admin)
    created = client.post(f"/v1/practitioners/{world.practitioner}/slots", headers=practitioner,
                          json={"start_time": iso(NOW + timedelta(days=2)),
                                "end_time": iso(NOW + timedelta(days=2, minutes=30))}).get_json()
    moved = client.patch(f"/v1/slots/{created['id']}", headers=practitioner,
                         json={"start_time": "2027-03-03T09:00:00.250000+00:00",
                               "end_time": "2027-03-03T10:30:00.000001+01:00"}).get_json()
    booked = client.post("/v1/appointments", headers=patient, json={"slot_id": created["id"]}).get_json()
    cancelled = client.post(f"/v1/appointments/{booked['id']}/cancel", headers=practitioner,
                            json={"reason": "clinic closed"}).get_json()
    assert client.get(f"/v1/appointments/{booked['id']}", headers=patient).get_json() == cancelled
    gone = client.get(f"/v1/slots/{created['id']}", headers=patient).get_json()
    assert client.delete(f"/v1/slots/{created['id']}", headers=practitioner).status_code == 204

    payloads = [(row["type"], row["payload"]) for row in events(admin, start)]
    assert payloads == [("slot.created", created), ("slot.updated", moved), ("appointment.booked", booked),
                        ("appointment.cancelled", cancelled), ("slot.deleted", gone)]
    assert moved["start_time"] == "2027-03-03T09:00:00.250000+00:00"  # the microseconds survive as the API writes them


def test_payload_of_a_psql_change_equals_what_the_api_then_shows(client, admin, world: World):
    slot = admin.execute(
        "INSERT INTO booking.availability_slots (practitioner_id, start_time, end_time) "
        "VALUES (%s, '2027-03-04 10:00:00.000100+05', '2027-03-04 10:20:00+05') RETURNING id",
        (world.practitioner,)).fetchone()
    shown = client.get(f"/v1/slots/{slot['id']}", headers=bearer(world.patient_user)).get_json()
    assert events(admin)[-1]["payload"] == shown


def test_time_off_and_schedule_changes_emit_events_with_the_rest_shapes(client, admin, world: World):
    """Issue 9's state: time off (created, deleted; its free slots each slot.deleted) and the weekly schedule
    (one schedule.updated per transaction, with the whole schedule as GET shows it)."""
    practitioner = bearer(world.practitioner_user)
    base = f"/v1/practitioners/{world.practitioner}"
    free = make_slot(admin, world, NOW + timedelta(days=3, hours=1))
    start = last_event_id(admin)
    rules = [{"weekday": 1, "start": "09:00", "end": "12:00", "slot_minutes": 30},
             {"weekday": 3, "start": "14:00", "end": "16:00", "slot_minutes": 60, "valid_from": "2027-03-01"}]
    assert client.put(f"{base}/schedule", headers=practitioner, json={"rules": rules}).status_code == 200
    shown = client.get(f"{base}/schedule", headers=practitioner).get_json()
    created = client.post(f"{base}/time-off", headers=practitioner,
                          json={"start_time": iso(NOW + timedelta(days=3)), "end_time": iso(NOW + timedelta(days=4)),
                                "reason": "conference"}).get_json()
    listed = client.get(f"{base}/time-off", headers=practitioner).get_json()["data"]
    assert client.delete(f"{base}/time-off/{created['id']}", headers=practitioner).status_code == 204
    assert client.put(f"{base}/schedule", headers=practitioner, json={"rules": []}).status_code == 200

    logged = events(admin, start)
    assert [(row["type"], row["practitioner_id"]) for row in logged] == [
        ("schedule.updated", world.practitioner), ("time_off.created", world.practitioner),
        ("slot.deleted", world.practitioner), ("time_off.deleted", world.practitioner),
        ("schedule.updated", world.practitioner)]
    assert logged[0]["payload"] == {"practitioner_id": world.practitioner, **shown}
    assert len(shown["rules"]) == 2
    assert logged[1]["payload"] == listed[0] == logged[3]["payload"]
    assert logged[2]["slot_id"] == free["id"]
    assert logged[4]["payload"] == {"practitioner_id": world.practitioner, "rules": []}


# A cursor never skips an event -----------------------------------------------------------

def test_a_reader_does_not_pass_an_open_transactions_event(db, admin, world: World):
    """The transaction that started first writes its event last and commits last."""
    cursor = last_event_id(admin)
    with psycopg.connect(db, row_factory=dict_row) as slow, psycopg.connect(db, row_factory=dict_row) as fast:
        slow.execute("SELECT pg_current_xact_id()")          # the older transaction
        fast_slot = make_slot(fast, world, NOW + timedelta(days=2))
        fast.commit()                                         # a younger one commits first
        # Its event is committed (a naive "id > cursor" reader would return it and move past
        # the older transaction's event to come), but the reader does not move past the open one.
        assert [row["slot_id"] for row in events(admin, cursor)] == [fast_slot["id"]]
        assert read(admin, cursor) == []
        slow_slot = make_slot(slow, world, NOW + timedelta(days=3))
        assert read(admin, cursor) == []
        slow.commit()
    seen = read(admin, cursor)
    assert kinds(seen) == [("slot.created", slow_slot["id"], None), ("slot.created", fast_slot["id"], None)]
    assert [row["id"] for row in seen] == sorted(row["id"] for row in seen)
    # Nothing can appear below the last id seen any more.
    assert read(admin, seen[-1]["id"]) == []


def test_a_reader_waits_for_an_open_writer_then_sees_its_event(db, admin, world: World):
    cursor = last_event_id(admin)
    with psycopg.connect(db, row_factory=dict_row) as writer:
        open_slot = make_slot(writer, world, NOW + timedelta(days=2))   # uncommitted
        # committed, but younger (another practitioner: create_slot locks the first one's slots)
        later = make_slot(admin, world, NOW + timedelta(days=3), practitioner="other_practitioner")
        assert read(admin, cursor) == []
        writer.commit()
    assert [row["slot_id"] for row in read(admin, cursor)] == [open_slot["id"], later["id"]]


def test_a_writer_does_not_read_its_own_uncommitted_events(db, admin, world: World):
    cursor = last_event_id(admin)
    with psycopg.connect(db, row_factory=dict_row) as writer:
        make_slot(writer, world, NOW + timedelta(days=2))
        assert read(writer, cursor) == []
        writer.rollback()
    assert read(admin, cursor) == []


@pytest.mark.slow
def test_a_polling_reader_sees_every_committed_event_exactly_once_in_order(db, admin, world: World):
    """Writers with transactions of random length and random outcome; a reader polls all along.

    The reader never gets an id at or below its cursor, and at the end it has seen exactly
    the events that committed, in id order."""
    start = last_event_id(admin)
    stop = threading.Event()
    seen: list[int] = []
    failures: list[BaseException] = []

    def reader() -> None:
        cursor = start
        try:
            with psycopg.connect(db, autocommit=True, row_factory=dict_row) as conn:
                while True:
                    done = stop.is_set()
                    for row in read(conn, cursor, 50):
                        assert row["id"] > cursor
                        cursor = row["id"]
                        seen.append(cursor)
                    if done:
                        return
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    def writer(index: int) -> None:
        rng = random.Random(index)
        try:
            with psycopg.connect(db, row_factory=dict_row) as conn:
                for n in range(12):
                    conn.execute("SELECT pg_current_xact_id()")
                    time.sleep(rng.random() * 0.02)
                    for k in range(rng.randint(1, 3)):
                        start_at = NOW + timedelta(days=10 + index, hours=n, minutes=10 * k)
                        conn.execute("INSERT INTO booking.availability_slots (practitioner_id, start_time, end_time) "
                                     "VALUES (%s, %s, %s)", (world.practitioner, start_at,
                                                             start_at + timedelta(minutes=5)))
                        time.sleep(rng.random() * 0.01)
                    conn.rollback() if rng.random() < 0.2 else conn.commit()
        except BaseException as exc:
            failures.append(exc)

    reading = threading.Thread(target=reader)
    reading.start()
    writers = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    reading.join(30)
    assert not failures, failures
    committed = [row["id"] for row in events(admin, start)]
    assert len(committed) > 20
    assert seen == committed


def test_the_start_cursor_skips_history_but_nothing_to_come(db, admin, events_login, world: World):
    make_slot(admin, world, NOW + timedelta(days=2))
    with psycopg.connect(db, row_factory=dict_row) as writer:
        pending = make_slot(writer, world, NOW + timedelta(days=3))
        start = events_login.execute("SELECT booking_api.booking_events_start() AS id").fetchone()["id"]
        writer.commit()
    assert [row["slot_id"] for row in read(events_login, start)] == [pending["id"]]


def test_read_limits(admin, world: World):
    for day in range(3):
        make_slot(admin, world, NOW + timedelta(days=2 + day))
    assert len(read(admin, 0, 2)) == 2
    assert read(admin, None, 500) == read(admin, 0, 500)
    for bad in (0, 501, None):
        with sqlstate("MB400"):
            read(admin, 0, bad)


# NOTIFY ------------------------------------------------------------------------------------

def relay(conn: psycopg.Connection, after: int | None) -> int | None:
    """One call of the relay, as each webhook worker's relay thread makes it a few times a second."""
    return conn.execute("SELECT booking_api.notify_booking_events(%s) AS id", (after,)).fetchone()["id"]


def notifications(listener: psycopg.Connection, timeout: float = 0.3) -> list[tuple[str, str]]:
    return [(n.channel, n.payload) for n in listener.notifies(timeout=timeout)]


def notify_on_commit(conn: psycopg.Connection, on: bool) -> None:
    conn.execute("UPDATE booking.event_log_settings SET notify_on_commit = %s", (on,))


def test_a_change_notifies_listeners_when_it_commits(db, admin, world: World):
    with psycopg.connect(db, autocommit=True) as listener, psycopg.connect(db, row_factory=dict_row) as writer:
        listener.execute("LISTEN booking_events")
        start = last_event_id(admin)
        slot = make_slot(writer, world, NOW + timedelta(days=2))
        writer.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot["id"]))
        assert notifications(listener) == []                             # nothing before the commit
        writer.commit()
        written = events(admin, start)
        assert [e["type"] for e in written] == ["slot.created", "appointment.booked"]
        # One notification for the transaction's two events: its first event's id.
        assert notifications(listener, 2) == [("booking_events", str(written[0]["id"]))]

        make_slot(writer, world, NOW + timedelta(days=3))
        writer.rollback()
        assert notifications(listener, 0.5) == []                        # a rolled-back change: none

        before = last_event_id(admin)
        make_slot(admin, world, NOW + timedelta(days=4))                  # psql, autocommit: on its commit
        assert notifications(listener, 2) == [("booking_events", str(events(admin, before)[0]["id"]))]


def test_notifications_are_coalesced_while_a_notifier_is_in_flight(db, admin, world: World):
    """Only one notifying transaction at a time: the others commit without queueing on the notify lock."""
    with psycopg.connect(db, autocommit=True) as listener, psycopg.connect(db, row_factory=dict_row) as first, \
            psycopg.connect(db, row_factory=dict_row) as second:
        listener.execute("LISTEN booking_events")
        start = last_event_id(admin)
        make_slot(first, world, NOW + timedelta(days=2))              # first event: this one will notify
        make_slot(second, world, NOW + timedelta(days=3),              # a notifier is in flight: it will not
                  practitioner="other_practitioner")
        second.commit()
        assert notifications(listener, 0.5) == []
        first.commit()
        written = events(admin, start)
        assert len(written) == 2
        assert notifications(listener, 2) == [("booking_events", str(written[0]["id"]))]
        # That one wake-up finds both transactions' events.
        assert [e["id"] for e in read(admin, start)] == [e["id"] for e in written]
        # With no notifier in flight, the next transaction notifies again.
        make_slot(admin, world, NOW + timedelta(days=4))
        assert notifications(listener, 2) == [("booking_events", str(events(admin, written[-1]["id"])[0]["id"]))]


def test_the_owner_can_switch_the_commit_notification_off(db, admin, world: World):
    notify_on_commit(admin, False)
    with psycopg.connect(db, autocommit=True) as listener:
        listener.execute("LISTEN booking_events")
        slot = make_slot(admin, world, NOW + timedelta(days=2))
        admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot["id"]))
        assert notifications(listener, 0.5) == []
        notify_on_commit(admin, True)
        make_slot(admin, world, NOW + timedelta(days=3))
        assert len(notifications(listener, 2)) == 1


def test_only_the_owner_changes_event_log_settings(api_conn, events_login):
    for conn in (api_conn, events_login):
        assert refused(conn, "UPDATE booking.event_log_settings SET notify_on_commit = false") \
            == INSUFFICIENT_PRIVILEGE


def test_notify_tells_listeners_which_events_became_readable(db, admin, world: World):
    notify_on_commit(admin, False)                                       # the relay's notifications only
    start = last_event_id(admin)
    with psycopg.connect(db, autocommit=True) as listener, psycopg.connect(db, row_factory=dict_row) as writer, \
            psycopg.connect(db, autocommit=True, row_factory=dict_row) as relaying:
        listener.execute("LISTEN booking_events")
        last = relay(relaying, start)
        assert last == start and notifications(listener) == []          # nothing new: no notification
        make_slot(writer, world, NOW + timedelta(days=2))
        make_slot(writer, world, NOW + timedelta(days=3))
        last = relay(relaying, last)
        assert last == start and notifications(listener) == []          # not committed: nothing readable
        writer.commit()
        newest = last_event_id(admin)
        last = relay(relaying, last)
        assert last == newest
        assert notifications(listener, 2) == [("booking_events", str(newest))]   # one, with the highest id
        assert relay(relaying, last) == last and notifications(listener) == []   # and only once
        make_slot(writer, world, NOW + timedelta(days=4))
        writer.rollback()
        assert relay(relaying, last) == last and notifications(listener) == []   # none for a rollback

        # An older open transaction holds the horizon: no notification until it ends.
        with psycopg.connect(db, row_factory=dict_row) as older:
            older.execute("SELECT pg_current_xact_id()")
            make_slot(admin, world, NOW + timedelta(days=5))
            assert relay(relaying, last) == last and notifications(listener) == []
        newest = last_event_id(admin)
        assert relay(relaying, last) == newest
        assert notifications(listener, 2) == [("booking_events", str(newest))]


def test_a_worker_relays_notifications(db, admin, world: World):
    notify_on_commit(admin, False)                                       # the relay's notifications only
    stop = threading.Event()
    worker = Worker(without_search_path(db), Settings(relay=0.05, poll=0.05), name="relay-test")
    with psycopg.connect(db, autocommit=True) as listener:
        listener.execute("LISTEN booking_events")
        thread = threading.Thread(target=worker.relay, args=(stop,), daemon=True)
        thread.start()
        try:
            notifications(listener, 0.5)                       # the relay's first call may announce history
            make_slot(admin, world, NOW + timedelta(days=2))
            newest = last_event_id(admin)
            received = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
        finally:
            stop.set()
            thread.join(5)
    assert received == [str(newest)]


# Who may read --------------------------------------------------------------------------------

def test_events_role_reads_events_and_nothing_else(events_login, admin, world: World):
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    rows = read(events_login, 0)
    assert kinds(rows) == [("slot.created", slot["id"], None)]
    assert rows[0]["payload"]["id"] == slot["id"]
    for table in ("booking.events", "booking.availability_slots", "booking.appointments", "booking.patients",
                  "booking.webhook_subscriptions", "booking.webhook_deliveries", "booking.calendar_tokens",
                  "public.users"):
        assert refused(events_login, f"SELECT * FROM {table}") == INSUFFICIENT_PRIVILEGE, table
    for statement in ("SELECT * FROM booking_api.get_slot(1, 1)", "SELECT * FROM booking_api.book_slot(1, 1)",
                      "SELECT booking_api.fan_out_webhook_events(10)",
                      "SELECT * FROM booking_api.list_webhook_subscriptions()",
                      "SELECT booking_api.purge_booking_events(interval '1 day')",
                      "SELECT * FROM booking_api.check_booking_invariants()",
                      "SELECT booking.booking_events_horizon()",
                      "INSERT INTO booking.events (type, occurred_at, payload) VALUES ('slot.created', now(), '{}')"):
        assert refused(events_login, statement) == INSUFFICIENT_PRIVILEGE, statement


def test_webhooks_role_runs_the_worker_functions_only(webhooks_login, admin):
    assert webhooks_login.execute("SELECT booking_api.fan_out_webhook_events(10) AS n").fetchone()["n"] == 0
    assert webhooks_login.execute("SELECT * FROM booking_api.claim_webhook_deliveries(1, 1, '1 minute')"
                                  ).fetchall() == []
    for statement in ("SELECT * FROM booking.webhook_subscriptions", "SELECT * FROM booking.events",
                      "SELECT * FROM booking_api.read_booking_events(0, 10)",
                      "SELECT * FROM booking_api.add_webhook_subscription('https://example.com/')",
                      "SELECT * FROM booking_api.list_webhook_subscriptions()",
                      "SELECT * FROM booking_api.get_slot(1, 1)"):
        assert refused(webhooks_login, statement) == INSUFFICIENT_PRIVILEGE, statement


def test_api_role_cannot_read_events(api_conn):
    assert refused(api_conn, "SELECT * FROM booking_api.read_booking_events(0, 10)") == INSUFFICIENT_PRIVILEGE
    assert refused(api_conn, "SELECT booking_api.fan_out_webhook_events(10)") == INSUFFICIENT_PRIVILEGE


# Retention -------------------------------------------------------------------------------------

def test_purge_deletes_old_events_but_not_what_a_delivery_awaits(admin, world: World):
    old = make_slot(admin, world, NOW + timedelta(days=2))
    waiting = make_slot(admin, world, NOW + timedelta(days=3))
    subscription = admin.execute("SELECT * FROM add_webhook_subscription('https://example.com/hook', "
                                 "ARRAY['slot.deleted'])").fetchone()
    admin.execute("SELECT * FROM delete_slot(%s, %s)", (world.practitioner_user, waiting["id"]))
    assert admin.execute("SELECT fan_out_webhook_events(100) AS n").fetchone()["n"] == 3
    assert admin.execute("SELECT count(*) AS n FROM booking.webhook_deliveries").fetchone()["n"] == 1

    set_clock(admin, NOW + timedelta(days=40))
    recent = make_slot(admin, world, NOW + timedelta(days=42))
    assert admin.execute("SELECT purge_booking_events(interval '30 days') AS n").fetchone()["n"] == 2
    assert kinds(events(admin)) == [("slot.deleted", waiting["id"], None), ("slot.created", recent["id"], None)]
    admin.execute("UPDATE booking.webhook_deliveries SET status = 'delivered', finished_at = now()")
    assert admin.execute("SELECT purge_booking_events(interval '30 days', 1) AS n").fetchone()["n"] == 1
    assert admin.execute("SELECT count(*) AS n FROM booking.webhook_deliveries").fetchone()["n"] == 0
    assert old["id"] and subscription["id"]
    for bad in ("SELECT purge_booking_events(NULL)", "SELECT purge_booking_events(interval '-1 day')",
                "SELECT purge_booking_events(interval '1 day', 0)"):
        with sqlstate("MB400"):
            admin.execute(bad)


# The appointment lifecycle of issue 10 (rescheduling, attendance), once its functions exist -------

@pytest.fixture
def lifecycle(admin):
    if admin.execute("SELECT to_regprocedure('booking_api.reschedule_appointment(bigint,bigint,bigint)') AS f"
                     ).fetchone()["f"] is None:
        pytest.skip("the appointment lifecycle (issue 10) is not in this database")


def test_rescheduling_emits_rescheduled_and_booked_with_the_rest_shapes(lifecycle, client, admin, world: World):
    old_slot = make_slot(admin, world, NOW + timedelta(days=3))
    new_slot = make_slot(admin, world, NOW + timedelta(days=4))
    booked = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, old_slot["id"])).fetchone()
    start = last_event_id(admin)
    moved = admin.execute("SELECT * FROM reschedule_appointment(%s, %s, %s)",
                          (world.patient_user, booked["id"], new_slot["id"])).fetchone()
    logged = events(admin, start)
    assert kinds(logged) == [("appointment.rescheduled", old_slot["id"], booked["id"]),
                             ("appointment.booked", new_slot["id"], moved["id"])]
    show = {aid: client.get(f"/v1/appointments/{aid}", headers=bearer(world.patient_user)).get_json()
            for aid in (booked["id"], moved["id"])}
    assert logged[0]["payload"] == show[booked["id"]]
    assert logged[0]["payload"]["status"] == "cancelled" and logged[0]["payload"]["rescheduled_to"] == moved["id"]
    assert logged[1]["payload"] == show[moved["id"]] and logged[1]["payload"]["rescheduled_from"] == booked["id"]


def test_attendance_emits_completed_and_no_show(lifecycle, client, admin, world: World):
    from conftest import set_clock

    first, second = (make_slot(admin, world, NOW + timedelta(hours=n)) for n in (1, 2))
    appointments = [admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, s["id"])).fetchone()
                    for s in (first, second)]
    set_clock(admin, NOW + timedelta(hours=3))
    start = last_event_id(admin)
    admin.execute("SELECT * FROM complete_appointment(%s, %s)", (world.practitioner_user, appointments[0]["id"]))
    admin.execute("SELECT * FROM mark_no_show(%s, %s)", (world.practitioner_user, appointments[1]["id"]))
    logged = events(admin, start)
    assert [row["type"] for row in logged] == ["appointment.completed", "appointment.no_show"]
    for row, appointment in zip(logged, appointments, strict=True):
        assert row["payload"] == client.get(f"/v1/appointments/{appointment['id']}",
                                            headers=bearer(world.patient_user)).get_json()
