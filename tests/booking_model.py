"""The booking rules in plain Python: what tests/test_model.py compares the database with.

A few dicts of slots, appointments, schedule rules and time off over the people
of one World, and, per operation, the SQLSTATE the booking functions must
answer (None: success) given that state, in the order the functions check.
Practitioners of the model keep their dates in UTC (daylight saving is
tests/test_dst.py's business).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from conftest import NOW, World

DAY = timedelta(hours=24)

OK = None


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
    rescheduled_from: int | None = None
    rescheduled_to: int | None = None
    attended_at: datetime | None = None
    attended_by: int | None = None


@dataclass
class StoredKey:
    """An idempotency key's stored outcome: the request it answered, and what it answered."""

    request: tuple
    created: datetime
    result: dict | None
    sqlstate: str | None

@dataclass(frozen=True)
class Rule:
    weekday: int
    start: time
    end: time
    minutes: int
    valid_from: date | None = None
    valid_until: date | None = None

    def as_json(self) -> dict:
        return {"weekday": self.weekday, "start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M"),
                "slot_minutes": self.minutes, "valid_from": self.valid_from and self.valid_from.isoformat(),
                "valid_until": self.valid_until and self.valid_until.isoformat()}


@dataclass
class TimeOff:
    practitioner: int
    start: datetime
    end: datetime


@dataclass
class Model:
    """The booking rules, in plain Python, over the people of one World."""

    world: World
    now: datetime = NOW
    notice: dict[int, timedelta] = field(default_factory=dict)
    slots: dict[int, Slot] = field(default_factory=dict)
    appointments: dict[int, Appointment] = field(default_factory=dict)
    keys: dict[tuple[int, str], StoredKey] = field(default_factory=dict)
    rules: dict[int, list[Rule]] = field(default_factory=dict)
    time_off: dict[int, TimeOff] = field(default_factory=dict)

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

    def visible(self, actor: int, appointment_id: int) -> str | None:
        if actor not in self.users:
            return "MB401"
        appointment = self.appointments.get(appointment_id)
        if appointment is None:
            return "MB404"
        if self.patient_of_user.get(actor) != appointment.patient \
                and self.practitioner_user[appointment.practitioner] != actor:
            return "MB403"
        return OK

    def window_closed(self, actor: int, appointment: Appointment) -> bool:
        is_patient = self.patient_of_user.get(actor) == appointment.patient
        notice = self.notice.get(appointment.practitioner, DAY) if is_patient else timedelta(0)
        return self.now >= appointment.start - notice

    def cancel(self, actor: int, appointment_id: int, reason: str | None) -> str | None:
        error = self.visible(actor, appointment_id)
        if error:
            return error
        appointment = self.appointments[appointment_id]
        if reason is not None and len(reason) > 1000:
            return "MB400"
        if appointment.status != "booked":
            return "MBA01"
        return "MBA02" if self.window_closed(actor, appointment) else OK

    def reschedule(self, actor: int, appointment_id: int, slot_id: int) -> str | None:
        error = self.visible(actor, appointment_id)
        if error:
            return error
        appointment = self.appointments[appointment_id]
        target = self.slots.get(slot_id)
        if target is None:
            return "MB404"
        if target.practitioner != appointment.practitioner or slot_id == appointment.slot_id:
            return "MBA04"
        if appointment.status != "booked":
            return "MBA01"
        if self.window_closed(actor, appointment):
            return "MBA02"
        if target.start <= self.now:
            return "MBS04"
        return "MBS01" if target.status == "booked" else OK

    def attend(self, actor: int, appointment_id: int) -> str | None:
        error = self.visible(actor, appointment_id)
        if error:
            return error
        appointment = self.appointments[appointment_id]
        if self.practitioner_user[appointment.practitioner] != actor:
            return "MB403"
        if appointment.status != "booked":
            return "MBA01"
        return "MBA03" if self.now < appointment.start else OK

    def set_notice(self, actor: int, practitioner: int, notice: timedelta) -> str | None:
        if actor not in self.users:
            return "MB401"
        if self.practitioner_user[practitioner] != actor:
            return "MB403"
        return "MB400" if not timedelta(0) <= notice <= timedelta(days=30) else OK


    # Availability (the practitioners of the model keep their dates in UTC) ----------------

    def owner_check(self, actor: int, practitioner: int) -> str | None:
        if actor not in self.users:
            return "MB401"
        if practitioner not in self.practitioner_user:
            return "MB404"
        return "MB403" if self.practitioner_user[practitioner] != actor else OK

    def set_schedule(self, actor: int, practitioner: int, rules: list[dict]) -> str | None:
        error = self.owner_check(actor, practitioner)
        if error:
            return error
        parsed = []
        for given in rules:
            weekday, start, end, minutes = given["weekday"], given["start"], given["end"], given["slot_minutes"]
            if weekday not in range(1, 8) or "24:00" in (start, end) or minutes not in range(5, 481):
                return "MB400"
            start, end = time.fromisoformat(start), time.fromisoformat(end)
            length = datetime.combine(NOW.date(), end) - datetime.combine(NOW.date(), start)
            valid_from = given["valid_from"] and date.fromisoformat(given["valid_from"])
            valid_until = given["valid_until"] and date.fromisoformat(given["valid_until"])
            if end <= start or length < timedelta(minutes=minutes) or (
                    valid_from and valid_until and valid_until < valid_from):
                return "MBV01"
            parsed.append(Rule(weekday, start, end, minutes, valid_from, valid_until))
        for i, a in enumerate(parsed):
            for b in parsed[i + 1:]:
                if a.weekday == b.weekday and a.start < b.end and b.start < a.end and \
                        (a.valid_from or date.min) <= (b.valid_until or date.max) and \
                        (b.valid_from or date.min) <= (a.valid_until or date.max):
                    return "MBV01"
        return OK

    def publish(self, actor: int | None, practitioner: int, through: date) -> tuple[str | None, list, int]:
        """(expected state, the (start, end) ranges created, how many skipped)."""
        if actor is not None:
            error = self.owner_check(actor, practitioner)
            if error:
                return error, [], 0
        today = self.now.date()
        if through < today or through > (self.now + _two_years(self.now)).date():
            return "MBS05", [], 0
        described = []
        day = today
        while day <= through:
            for each in self.rules.get(practitioner, []):
                if each.weekday == day.isoweekday() and (each.valid_from or date.min) <= day <= (
                        each.valid_until or date.max):
                    first = datetime.combine(day, each.start, tzinfo=NOW.tzinfo)
                    count = int((datetime.combine(day, each.end, tzinfo=NOW.tzinfo) - first).total_seconds()
                                // 60) // each.minutes
                    described += [(first + timedelta(minutes=each.minutes * k), timedelta(minutes=each.minutes))
                                  for k in range(count)]
            day += timedelta(days=1)
        created: list[tuple[datetime, datetime]] = []
        for start, length in sorted(described):
            end = start + length
            if start <= self.now or start > self.now + _two_years(self.now):
                continue
            if any(t.practitioner == practitioner and t.start < end and start < t.end for t in self.time_off.values()):
                continue
            if self.overlaps(practitioner, start, end, None) or any(s < end and start < e for s, e in created):
                continue
            created.append((start, end))
        return OK, created, len(described) - len(created)

    def take_time_off(self, actor: int, practitioner: int, start: datetime, end: datetime) -> str | None:
        error = self.owner_check(actor, practitioner)
        if error:
            return error
        if end <= start or end <= self.now or start > self.now + _two_years(self.now):
            return "MBS05"
        return OK

    def covered(self, practitioner: int, start: datetime, end: datetime, status: str) -> list[int]:
        """Slots of that status which have not started and overlap [start, end), by start."""
        return [sid for sid, s in sorted(self.slots.items(), key=lambda kv: kv[1].start)
                if s.practitioner == practitioner and s.status == status and s.start > self.now
                and s.start < end and start < s.end]

    def remove_slots(self, ids: list[int]) -> None:
        for sid in ids:
            del self.slots[sid]
            for appointment in self.appointments.values():
                if appointment.slot_id == sid:
                    appointment.slot_id = None

    def bulk(self, actor: int, practitioner: int, ranges: list[tuple[datetime, datetime]]) -> str | None:
        error = self.owner_check(actor, practitioner)
        if error:
            return error
        errors: dict[int, str] = {}
        for index, (start, end) in enumerate(ranges):
            error = self.slot_times_error(start, end)
            if error:
                errors[index] = error
        fine = [i for i in range(len(ranges)) if i not in errors]
        for index in fine:
            start, end = ranges[index]
            if self.overlaps(practitioner, start, end, None) or any(
                    j < index and ranges[j][0] < end and start < ranges[j][1] for j in fine):
                errors[index] = "MBS02"
        return errors[min(errors)] if errors else OK

    def delete_range(self, actor: int, practitioner: int, first: date, last: date) -> str | None:
        error = self.owner_check(actor, practitioner)
        if error:
            return error
        return "MB400" if last < first or (last - first).days >= 366 else OK


def _two_years(now: datetime) -> timedelta:
    """PostgreSQL's now + interval '2 years' (calendar years), as a duration from now."""
    try:
        later = now.replace(year=now.year + 2)
    except ValueError:  # 29 February
        later = now.replace(year=now.year + 2, day=28)
    return later - now
