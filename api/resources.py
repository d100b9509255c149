"""JSON shapes of the API's resources, built from the rows the functions return."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any


def _time(value: datetime | str | None) -> str | None:
    """RFC 3339 in UTC; a row replayed from JSON carries its times as strings."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value).astimezone(UTC)
    return None if value is None else value.isoformat()


def etag(row: dict[str, Any]) -> str:
    """The strong entity-tag of a versioned row (a slot, the settings)."""
    return f'"{row["version"]}"'


def slot(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "practitioner_id": row["practitioner_id"],
        "start_time": _time(row["start_time"]),
        "end_time": _time(row["end_time"]),
        "status": row["status"],
    }


def appointment(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "slot_id": row["slot_id"],
        "patient_id": row["patient_id"],
        "practitioner_id": row["practitioner_id"],
        "status": row["status"],
        "start_time": _time(row["start_time"]),
        "end_time": _time(row["end_time"]),
        "booked_at": _time(row["booked_at"]),
        "cancelled_at": _time(row["cancelled_at"]),
        "cancelled_by": row["cancelled_by"],
        "cancellation_reason": row["cancellation_reason"],
        "rescheduled_from": row["rescheduled_from"],
        "rescheduled_to": row["rescheduled_to"],
    }


def history_entry(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "from_status": row["from_status"],
        "to_status": row["to_status"],
        "actor_user_id": row["actor_user_id"],
        "changed_at": _time(row["changed_at"]),
    }


def settings(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "practitioner_id": row["practitioner_id"],
        "time_zone": row["time_zone"],
        "cancellation_notice_minutes": int(row["cancellation_notice"].total_seconds() // 60),
    }


def listed_slot(row: dict[str, Any]) -> dict[str, Any]:
    """A slot of a listing; a booked one in the practitioner's own view carries its appointment."""
    shaped = slot(row)
    if row.get("appointment_id") is not None:
        shaped["appointment_id"] = row["appointment_id"]
    return shaped


def page(rows: list[dict[str, Any]], shape) -> dict[str, Any]:
    """{"data": [...], "next_cursor"}: a list function puts next_cursor on its last row."""
    return {"data": [shape(row) for row in rows], "next_cursor": rows[-1]["next_cursor"] if rows else None}


def me(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "name": row["name"],
        "email": row["email"],
        "patient_id": row["patient_id"],
        "practitioner_id": row["practitioner_id"],
    }


def practitioner(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "specialty": row["specialty"],
        "bio": row["bio"],
        "time_zone": row["time_zone"],
        "next_available_start": _time(row["next_available_start"]),
    }


def _date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def schedule_rule(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "weekday": row["weekday"],
        "start": row["local_start"].strftime("%H:%M"),
        "end": row["local_end"].strftime("%H:%M"),
        "slot_minutes": row["slot_minutes"],
        "valid_from": _date(row["valid_from"]),
        "valid_until": _date(row["valid_until"]),
    }


def time_off(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "practitioner_id": row["practitioner_id"],
        "start_time": _time(row["start_time"]),
        "end_time": _time(row["end_time"]),
        "reason": row["reason"],
    }


def created_time_off(row: dict[str, Any]) -> dict[str, Any]:
    return {**time_off(row), "removed_slots": row["removed_slots"], "booked_slot_ids": row["booked_slot_ids"]}
