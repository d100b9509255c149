"""JSON shapes of the API's resources, built from the rows the functions return."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


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
    }


def settings(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "practitioner_id": row["practitioner_id"],
        "time_zone": row["time_zone"],
        "cancellation_notice_minutes": int(row["cancellation_notice"].total_seconds() // 60),
    }
