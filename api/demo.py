"""Demo data for a development server: one practitioner with a weekly schedule published four weeks
ahead, and two patients."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

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


# The demo practitioner's week: Monday to Friday, 09:00-12:00 and 13:00-17:00 London time,
# 30-minute slots; published four weeks ahead, the way a practice would.
WEEKLY_RULES = [{"weekday": day, "start": start, "end": end, "slot_minutes": 30}
                for day in range(1, 6) for start, end in (("09:00", "12:00"), ("13:00", "17:00"))]
PUBLISH_DAYS = 28


def load(conninfo: str, *, days: int = PUBLISH_DAYS) -> Demo:
    """Creates the demo people (once), sets the practitioner's weekly schedule and publishes it `days` ahead.

    Publishing is idempotent, so loading again only adds the days that came into the horizon.
    """
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
        conn.execute("SELECT * FROM booking_api.set_schedule(%s, %s, %s)",
                     (practitioner_user, practitioner_id, Jsonb(WEEKLY_RULES)))
        now = conn.execute("SELECT booking_api.booking_now()").fetchone()[0]
        through = now.astimezone(ZoneInfo(TIME_ZONE)).date() + timedelta(days=days)
        conn.execute("SELECT * FROM booking_api.publish_schedule(%s, %s, %s)",
                     (practitioner_user, practitioner_id, through))
    return Demo(practitioner_user, practitioner_id, patient_user, patient_id, other_user, other_id)
