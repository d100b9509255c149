"""Demo data for a development server: one practitioner, two patients, a week of slots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg

from .db import prepare_threshold

PRACTITIONER_EMAIL = "ada.physio@demo.medbook.test"
PATIENT_EMAIL = "sam.patient@demo.medbook.test"
OTHER_PATIENT_EMAIL = "alex.patient@demo.medbook.test"
TIME_ZONE = "Europe/London"


@dataclass(frozen=True)
class Demo:
    practitioner_user_id: int
    practitioner_id: int
    patient_user_id: int
    patient_id: int
    other_patient_user_id: int
    other_patient_id: int


def _user(conn: psycopg.Connection, email: str, name: str, role: str) -> int:
    row = conn.execute(
        "INSERT INTO users (email, name, role) VALUES (%s, %s, %s) "
        "ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING id",
        (email, name, role)).fetchone()
    return row[0]


def _patient(conn: psycopg.Connection, user_id: int) -> int:
    conn.execute("INSERT INTO booking.patients (user_id) VALUES (%s) ON CONFLICT (user_id) DO NOTHING", (user_id,))
    return conn.execute("SELECT id FROM booking.patients WHERE user_id = %s", (user_id,)).fetchone()[0]


def find(conninfo: str) -> Demo | None:
    """The demo people, if the demo has been loaded."""
    with psycopg.connect(conninfo, prepare_threshold=prepare_threshold()) as conn:
        row = conn.execute(
            """SELECT pu.id, pr.id, su.id, sp.id, au.id, ap.id
                 FROM users pu JOIN practitioners pr ON pr.user_id = pu.id,
                      users su JOIN booking.patients sp ON sp.user_id = su.id,
                      users au JOIN booking.patients ap ON ap.user_id = au.id
                WHERE pu.email = %s AND su.email = %s AND au.email = %s""",
            (PRACTITIONER_EMAIL, PATIENT_EMAIL, OTHER_PATIENT_EMAIL)).fetchone()
    return Demo(*row) if row else None


def load(conninfo: str, *, days: int = 7) -> Demo:
    """Creates the demo people (once) and 30-minute slots 09:00-12:00 London time for the coming days."""
    with psycopg.connect(conninfo, prepare_threshold=prepare_threshold()) as conn:
        practitioner_user = _user(conn, PRACTITIONER_EMAIL, "Ada Okafor", "practitioner")
        conn.execute(
            "INSERT INTO practitioners (user_id, specialty, bio) VALUES (%s, %s, %s) "
            "ON CONFLICT (user_id) DO NOTHING",
            (practitioner_user, "Physiotherapy", "Sports injuries and rehabilitation."))
        practitioner_id = conn.execute(
            "SELECT id FROM practitioners WHERE user_id = %s", (practitioner_user,)).fetchone()[0]
        patient_user = _user(conn, PATIENT_EMAIL, "Sam Taylor", "patient")
        other_user = _user(conn, OTHER_PATIENT_EMAIL, "Alex Morgan", "patient")
        patient_id = _patient(conn, patient_user)
        other_id = _patient(conn, other_user)
        conn.execute("SELECT booking_api.set_booking_settings(%s, %s, %s, NULL)",
                     (practitioner_user, practitioner_id, TIME_ZONE))

        zone = ZoneInfo(TIME_ZONE)
        now = conn.execute("SELECT booking_api.booking_now()").fetchone()[0]
        today = now.astimezone(zone).date()
        for day in range(1, days + 1):
            local_day = today + timedelta(days=day)
            for start in _day_starts(local_day, zone):
                if start <= now:
                    continue
                if conn.execute("SELECT 1 FROM booking.availability_slots WHERE practitioner_id = %s "
                                "AND start_time = %s", (practitioner_id, start)).fetchone():
                    continue
                conn.execute("SELECT booking_api.create_slot(%s, %s, %s, %s)",
                             (practitioner_user, practitioner_id, start, start + timedelta(minutes=30)))
    return Demo(practitioner_user, practitioner_id, patient_user, patient_id, other_user, other_id)


def _day_starts(local_day: date, zone: ZoneInfo) -> list[datetime]:
    first = datetime.combine(local_day, time(9, 0), tzinfo=zone)
    return [first + timedelta(minutes=30 * i) for i in range(6)]
