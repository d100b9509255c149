"""Model-based test: random sequences of booking operations against a Python model.

A hypothesis RuleBasedStateMachine drives the SQL functions as medbook_api
(create, update and delete slots; book; cancel as patient and as practitioner;
change the cancellation notice) while moving the booking clock, often to the
instants where rules flip: a slot's start and its cancellation deadline, one
second either side. Every call's result or SQLSTATE is compared with what the
model (a few dicts and the rules of docs/DESIGN.md in plain Python) predicts,
and after every step the slots and appointments tables, the two list functions
and check_booking_invariants() must agree with the model.

Each example starts from empty booking tables in one database of this test:
TRUNCATE as superuser (with session_replication_role = replica so the
append-only triggers let it) is far cheaper than a new database per example.

Runs: HYPOTHESIS_PROFILE=long for a long run (see docs/OPERATIONS.md).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from conftest import NOW, World, add_patient, add_practitioner, add_user, api_connect
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from psycopg.rows import dict_row

# The suite's profile is derandomized: the same 100 sequences every run, so CI cannot
# flake on the coverage assertions below; the long profile explores new ones each time.
PROFILES = {
    "default": settings(max_examples=100, stateful_step_count=50, deadline=None, derandomize=True,
                        suppress_health_check=[HealthCheck.too_slow]),
    "long": settings(max_examples=2000, stateful_step_count=80, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow]),
}
PROFILE = PROFILES["long" if os.environ.get("HYPOTHESIS_PROFILE") == "long" else "default"]

STEP = timedelta(minutes=30)
DAY = timedelta(hours=24)
UNKNOWN_ID = 9_000_000_000
# Slot starts: a grid of half hours from two hours before NOW to four days after.
START_STEPS = st.integers(min_value=-4, max_value=4 * 48)
# Mostly valid lengths, sometimes the edges: 24 hours, a second more, zero, negative.
DURATIONS = st.sampled_from([STEP, STEP, STEP, 2 * STEP, 2 * STEP, 3 * STEP, DAY,
                             DAY + timedelta(seconds=1), timedelta(0), -STEP])
REASONS = st.sampled_from([None, "", "  ", "  running late  ", "ill", "é" * 1000, "x" * 1001,
                          "\u00e9\u4e2d\U0001f600" * 333 + "x" * 2])
NOTICES = st.sampled_from([timedelta(0), timedelta(hours=1), DAY, 2 * DAY, timedelta(days=30),
                           timedelta(days=30, seconds=1), timedelta(hours=-1)])
OK = None
OUTCOMES: Counter[str] = Counter()


@dataclass
class Slot:
    practitioner: int
    start: datetime
    end: datetime
    status: str = "available"


@dataclass
class Appointment:
    slot_id: int | None
    patient: int
    practitioner: int
    start: datetime
    end: datetime
    booked_at: datetime
    status: str = "booked"
    cancelled_at: datetime | None = None
    cancelled_by: int | None = None
    reason: str | None = None


@dataclass
class Model:
    """The booking rules, in plain Python, over the people of one World."""

    world: World
    now: datetime = NOW
    notice: dict[int, timedelta] = field(default_factory=dict)
    slots: dict[int, Slot] = field(default_factory=dict)
    appointments: dict[int, Appointment] = field(default_factory=dict)

    @property
    def users(self) -> set[int]:
        w = self.world
        return {w.practitioner_user, w.other_practitioner_user, w.patient_user, w.other_patient_user,
                w.stranger_user}

    @property
    def practitioner_user(self) -> dict[int, int]:
        return {self.world.practitioner: self.world.practitioner_user,
                self.world.other_practitioner: self.world.other_practitioner_user}

    @property
    def patient_of_user(self) -> dict[int, int]:
        return {self.world.patient_user: self.world.patient,
                self.world.other_patient_user: self.world.other_patient}

    def slot_times_error(self, start: datetime, end: datetime) -> str | None:
        if end <= start or end - start > DAY:
            return "MBS05"
        if start <= self.now:
            return "MBS04"
        if start > self.now + timedelta(days=730) and start > self.now + _two_years(self.now):
            return "MBS05"
        return OK

    def overlaps(self, practitioner: int, start: datetime, end: datetime, ignore: int | None) -> bool:
        return any(s.practitioner == practitioner and s.start < end and start < s.end
                   for sid, s in self.slots.items() if sid != ignore)

    def create_slot(self, actor: int, practitioner: int, start: datetime, end: datetime) -> str | None:
        if actor not in self.users:
            return "MB401"
        if practitioner not in self.practitioner_user:
            return "MB404"
        if self.practitioner_user[practitioner] != actor:
            return "MB403"
        error = self.slot_times_error(start, end)
        if error:
            return error
        return "MBS02" if self.overlaps(practitioner, start, end, None) else OK

    def update_slot(self, actor: int, slot_id: int, start: datetime | None,
                    end: datetime | None) -> str | None:
        if actor not in self.users:
            return "MB401"
        if start is None and end is None:
            return "MB400"
        slot = self.slots.get(slot_id)
        if slot is None:
            return "MB404"
        if self.practitioner_user[slot.practitioner] != actor:
            return "MB403"
        if slot.status == "booked":
            return "MBS03"
        if slot.start <= self.now:
            return "MBS04"
        start, end = start or slot.start, end or slot.end
        error = self.slot_times_error(start, end)
        if error:
            return error
        return "MBS02" if self.overlaps(slot.practitioner, start, end, slot_id) else OK

    def delete_slot(self, actor: int, slot_id: int) -> str | None:
        if actor not in self.users:
            return "MB401"
        slot = self.slots.get(slot_id)
        if slot is None:
            return "MB404"
        if self.practitioner_user[slot.practitioner] != actor:
            return "MB403"
        return "MBS03" if slot.status == "booked" else OK

    def book(self, actor: int, slot_id: int) -> str | None:
        if actor not in self.users:
            return "MB401"
        if actor not in self.patient_of_user:
            return "MB403"
        slot = self.slots.get(slot_id)
        if slot is None:
            return "MB404"
        if slot.start <= self.now:
            return "MBS04"
        return "MBS01" if slot.status == "booked" else OK

    def cancel(self, actor: int, appointment_id: int, reason: str | None) -> str | None:
        if actor not in self.users:
            return "MB401"
        appointment = self.appointments.get(appointment_id)
        if appointment is None:
            return "MB404"
        is_patient = self.patient_of_user.get(actor) == appointment.patient
        if not is_patient and self.practitioner_user[appointment.practitioner] != actor:
            return "MB403"
        if reason is not None and len(reason) > 1000:
            return "MB400"
        if appointment.status != "booked":
            return "MBA01"
        notice = self.notice.get(appointment.practitioner, DAY) if is_patient else timedelta(0)
        return "MBA02" if self.now >= appointment.start - notice else OK

    def set_notice(self, actor: int, practitioner: int, notice: timedelta) -> str | None:
        if actor not in self.users:
            return "MB401"
        if self.practitioner_user[practitioner] != actor:
            return "MB403"
        return "MB400" if not timedelta(0) <= notice <= timedelta(days=30) else OK


def _two_years(now: datetime) -> timedelta:
    """PostgreSQL's now + interval '2 years' (calendar years), as a duration from now."""
    try:
        later = now.replace(year=now.year + 2)
    except ValueError:  # 29 February
        later = now.replace(year=now.year + 2, day=28)
    return later - now


class BookingMachine(RuleBasedStateMachine):
    """One example: empty booking tables, the clock at NOW, random operations."""

    conninfo: str = ""
    world: World | None = None

    def __init__(self) -> None:
        super().__init__()
        assert self.world is not None
        self.model = Model(self.world)
        self.admin = psycopg.connect(self.conninfo, autocommit=True, row_factory=dict_row)
        self.admin.execute("SET session_replication_role = replica")
        self.admin.execute("TRUNCATE appointment_history, appointments, availability_slots, "
                           "practitioner_booking_settings, booking_clock RESTART IDENTITY")
        self.admin.execute("SET session_replication_role = origin")
        self.admin.execute("SELECT set_booking_clock(%s)", (NOW,))
        self.api = api_connect(self.conninfo)
        self.calls = 0

    def teardown(self) -> None:
        self.api.close()
        self.admin.close()

    # Helpers ------------------------------------------------------------------

    def call(self, expected: str | None, function: str, *args) -> dict | None:
        """Calls function as medbook_api; the SQLSTATE (or success) must be the expected one."""
        placeholders = ", ".join(["%s"] * len(args))
        try:
            row = self.api.execute(f"SELECT * FROM {function}({placeholders})", args).fetchone()
        except psycopg.Error as exc:
            assert exc.sqlstate == expected, (function, args, exc.sqlstate, str(exc))
            OUTCOMES[f"{function} {exc.sqlstate}"] += 1
            return None
        assert expected is OK, (function, args, "succeeded, expected", expected)
        OUTCOMES[f"{function} ok"] += 1
        return row

    def actor(self, data, *roles: str, likely: int | None = None) -> int:
        """One of the roles' users or an unknown id; `likely` (the rightful actor) most often."""
        choices = [getattr(self.world, f"{role}_user") for role in roles] + [UNKNOWN_ID]
        if likely is not None:
            choices += [likely] * (2 * len(choices))
        return data.draw(st.sampled_from(choices), label="actor")

    def owner(self, slot_id: int) -> int | None:
        slot = self.model.slots.get(slot_id)
        return self.model.practitioner_user[slot.practitioner] if slot else None

    def slot_id(self, data) -> int:
        return data.draw(st.sampled_from(sorted(self.model.slots)), label="slot_id")

    # Rules --------------------------------------------------------------------

    @rule(data=st.data(), step=START_STEPS, length=DURATIONS,
          practitioner=st.sampled_from(["practitioner", "other_practitioner"]))
    def create_slot(self, data, step, length, practitioner):
        pid = getattr(self.world, practitioner)
        actor = self.actor(data, "practitioner", "other_practitioner", "patient",
                           likely=self.model.practitioner_user[pid])
        start = NOW + step * STEP
        expected = self.model.create_slot(actor, pid, start, start + length)
        row = self.call(expected, "create_slot", actor, pid, start, start + length)
        if row:
            assert row["id"] not in self.model.slots
            assert (row["practitioner_id"], row["start_time"], row["end_time"], row["status"]) == (
                pid, start, start + length, "available")
            self.model.slots[row["id"]] = Slot(pid, start, start + length)

    @rule(data=st.data(), days=st.sampled_from([729, 730, 731, 732]))
    def create_slot_near_the_horizon(self, data, days):
        actor = self.world.practitioner_user
        start = self.model.now + timedelta(days=days)
        expected = self.model.create_slot(actor, self.world.practitioner, start, start + STEP)
        row = self.call(expected, "create_slot", actor, self.world.practitioner, start, start + STEP)
        if row:
            self.model.slots[row["id"]] = Slot(self.world.practitioner, start, start + STEP)

    @rule(data=st.data())
    def unknown_ids(self, data):
        """Every function given a slot or appointment id that does not exist."""
        actor = self.actor(data, "practitioner", "patient", "stranger")
        start = NOW + timedelta(days=1)
        self.call(self.model.update_slot(actor, UNKNOWN_ID, start, None), "update_slot",
                  actor, UNKNOWN_ID, start, None)
        self.call(self.model.delete_slot(actor, UNKNOWN_ID), "delete_slot", actor, UNKNOWN_ID)
        self.call(self.model.book(actor, UNKNOWN_ID), "book_slot", actor, UNKNOWN_ID)
        self.call(self.model.cancel(actor, UNKNOWN_ID, None), "cancel_appointment", actor, UNKNOWN_ID)

    @precondition(lambda self: self.model.slots)
    @rule(data=st.data(), step=st.none() | START_STEPS, length=st.none() | DURATIONS)
    def update_slot(self, data, step, length):
        sid = self.slot_id(data)
        actor = self.actor(data, "practitioner", "other_practitioner", likely=self.owner(sid))
        start = None if step is None else NOW + step * STEP
        current = self.model.slots.get(sid)
        end = None
        if length is not None:
            base = start or (current.start if current else NOW)
            end = base + length
        expected = self.model.update_slot(actor, sid, start, end)
        row = self.call(expected, "update_slot", actor, sid, start, end)
        if row:
            current.start, current.end = start or current.start, end or current.end
            assert (row["start_time"], row["end_time"], row["status"]) == (
                current.start, current.end, "available")

    @precondition(lambda self: self.model.slots)
    @rule(data=st.data())
    def delete_slot(self, data):
        sid = self.slot_id(data)
        actor = self.actor(data, "practitioner", "other_practitioner", likely=self.owner(sid))
        row = self.call(self.model.delete_slot(actor, sid), "delete_slot", actor, sid)
        if row:
            assert row["id"] == sid
            del self.model.slots[sid]
            for appointment in self.model.appointments.values():
                if appointment.slot_id == sid:
                    appointment.slot_id = None

    @precondition(lambda self: self.model.slots)
    @rule(data=st.data())
    def book(self, data):
        actor = self.actor(data, "patient", "other_patient", "practitioner", "stranger",
                           likely=data.draw(st.sampled_from([self.world.patient_user,
                                                             self.world.other_patient_user])))
        sid = self.slot_id(data)
        row = self.call(self.model.book(actor, sid), "book_slot", actor, sid)
        if row:
            slot = self.model.slots[sid]
            assert row["id"] not in self.model.appointments
            assert (row["slot_id"], row["patient_id"], row["practitioner_id"], row["status"],
                    row["start_time"], row["end_time"], row["booked_at"]) == (
                sid, self.model.patient_of_user[actor], slot.practitioner, "booked", slot.start,
                slot.end, self.model.now)
            slot.status = "booked"
            self.model.appointments[row["id"]] = Appointment(
                sid, self.model.patient_of_user[actor], slot.practitioner, slot.start, slot.end,
                self.model.now)

    @precondition(lambda self: self.model.appointments)
    @rule(data=st.data(), reason=REASONS)
    def cancel(self, data, reason):
        aid = data.draw(st.sampled_from(sorted(self.model.appointments)),
                        label="appointment_id")
        appointment = self.model.appointments.get(aid)
        rightful = None
        if appointment:
            rightful = data.draw(st.sampled_from([
                {v: k for k, v in self.model.patient_of_user.items()}[appointment.patient],
                self.model.practitioner_user[appointment.practitioner]]), label="rightful")
        actor = self.actor(data, "patient", "other_patient", "practitioner", "other_practitioner",
                           "stranger", likely=rightful)
        self.cancel_as(actor, aid, reason)

    @precondition(lambda self: any(a.status == "booked" for a in self.model.appointments.values()))
    @rule(data=st.data(), nudge=st.sampled_from([-1, 0, 1]),
          by=st.sampled_from(["patient", "practitioner"]), reason=REASONS)
    def cancel_at_the_deadline(self, data, nudge, by, reason):
        """The clock one second before, at, or after the caller's deadline, then cancel."""
        booked = sorted(aid for aid, a in self.model.appointments.items() if a.status == "booked")
        aid = data.draw(st.sampled_from(booked), label="appointment_id")
        appointment = self.model.appointments[aid]
        if by == "patient":
            actor = {v: k for k, v in self.model.patient_of_user.items()}[appointment.patient]
            deadline = appointment.start - self.model.notice.get(appointment.practitioner, DAY)
        else:
            actor = self.model.practitioner_user[appointment.practitioner]
            deadline = appointment.start
        self.set_clock(deadline + timedelta(seconds=nudge))
        self.cancel_as(actor, aid, reason)

    def cancel_as(self, actor: int, aid: int, reason: str | None) -> None:
        row = self.call(self.model.cancel(actor, aid, reason), "cancel_appointment", actor, aid, reason)
        if row:
            appointment = self.model.appointments[aid]
            appointment.status, appointment.cancelled_at, appointment.cancelled_by = (
                "cancelled", self.model.now, actor)
            appointment.reason = (reason or "").strip(" ") or None
            self.model.slots[appointment.slot_id].status = "available"
            assert (row["status"], row["cancelled_at"], row["cancelled_by"],
                    row["cancellation_reason"]) == ("cancelled", self.model.now, actor, appointment.reason)

    @rule(data=st.data(), notice=NOTICES,
          practitioner=st.sampled_from(["practitioner", "other_practitioner"]))
    def set_notice(self, data, notice, practitioner):
        pid = getattr(self.world, practitioner)
        actor = self.actor(data, "practitioner", "other_practitioner",
                           likely=self.model.practitioner_user[pid])
        row = self.call(self.model.set_notice(actor, pid, notice), "set_booking_settings",
                        actor, pid, None, notice)
        if row:
            assert row["cancellation_notice"] == notice
            self.model.notice[pid] = notice

    @rule(data=st.data(), nudge=st.sampled_from([-1, 0, 1]),
          at=st.sampled_from(["start", "patient_deadline"]))
    def move_clock_to_a_boundary(self, data, nudge, at):
        """To a slot's (preferably a booked one's) start or its patient cancellation deadline,
        one second either side."""
        booked = [sid for sid, s in self.model.slots.items() if s.status == "booked"]
        candidates = sorted(booked or self.model.slots)
        if not candidates:
            return
        slot = self.model.slots[data.draw(st.sampled_from(candidates), label="slot")]
        target = slot.start
        if at == "patient_deadline":
            target -= self.model.notice.get(slot.practitioner, DAY)
        self.set_clock(target + timedelta(seconds=nudge))

    @rule(minutes=st.integers(min_value=-6 * 60, max_value=36 * 60))
    def move_clock(self, minutes):
        self.set_clock(self.model.now + timedelta(minutes=minutes))

    def set_clock(self, at: datetime) -> None:
        self.admin.execute("SELECT set_booking_clock(%s)", (at,))
        self.model.now = at

    # Invariants ---------------------------------------------------------------

    @invariant()
    def tables_match_the_model(self):
        slots = self.admin.execute(
            "SELECT id, practitioner_id, start_time, end_time, status FROM availability_slots").fetchall()
        assert {r["id"]: Slot(r["practitioner_id"], r["start_time"], r["end_time"], r["status"])
                for r in slots} == self.model.slots
        appointments = self.admin.execute("SELECT * FROM appointments").fetchall()
        assert {r["id"]: Appointment(r["slot_id"], r["patient_id"], r["practitioner_id"], r["start_time"],
                                     r["end_time"], r["booked_at"], r["status"], r["cancelled_at"],
                                     r["cancelled_by"], r["cancellation_reason"])
                for r in appointments} == self.model.appointments
        history = self.admin.execute("SELECT count(*) AS n FROM appointment_history").fetchone()["n"]
        assert history == len(self.model.appointments) + sum(
            a.status == "cancelled" for a in self.model.appointments.values())

    @invariant()
    def lists_match_the_model(self):
        m, w = self.model, self.world
        for pid in (w.practitioner, w.other_practitioner):
            listed = self.api.execute("SELECT id FROM list_available_slots(%s, %s)",
                                      (w.patient_user, pid)).fetchall()
            expected = sorted((s.start, sid) for sid, s in m.slots.items()
                              if s.practitioner == pid and s.status == "available" and s.start > m.now)
            assert [r["id"] for r in listed] == [sid for _, sid in expected]
        for user, patient in m.patient_of_user.items():
            listed = self.api.execute("SELECT id, start_time FROM list_upcoming_appointments(%s, %s)",
                                      (user, patient)).fetchall()
            expected = {aid for aid, a in m.appointments.items()
                        if a.patient == patient and a.status == "booked" and a.start > m.now}
            assert {r["id"] for r in listed} == expected
            assert [r["start_time"] for r in listed] == sorted(r["start_time"] for r in listed)

    @invariant()
    def database_is_healthy(self):
        assert self.admin.execute("SELECT * FROM check_booking_invariants()").fetchall() == []


def test_booking_rules_match_the_model(db: str, admin: psycopg.Connection):
    """Random operation sequences; every result, error and table row as the model says."""
    pu, p = add_practitioner(admin)
    opu, op = add_practitioner(admin)
    tu, t = add_patient(admin)
    otu, ot = add_patient(admin)
    BookingMachine.conninfo = db
    BookingMachine.world = World(pu, p, opu, op, tu, t, otu, ot, add_user(admin, "staff"))
    OUTCOMES.clear()
    run_state_machine_as_test(BookingMachine, settings=PROFILE)
    # The run must have reached the interesting places, or it proved little.
    print(sorted(OUTCOMES.items()))
    for outcome in ["create_slot ok", "create_slot MBS02", "create_slot MBS04", "create_slot MBS05",
                    "update_slot ok", "update_slot MBS03", "delete_slot ok", "delete_slot MBS03",
                    "book_slot ok", "book_slot MBS01", "book_slot MBS04", "book_slot MB403",
                    "cancel_appointment ok", "cancel_appointment MBA01", "cancel_appointment MBA02",
                    "cancel_appointment MB403", "cancel_appointment MB400"]:
        assert OUTCOMES[outcome] >= 1, (outcome, sorted(OUTCOMES.items()))
