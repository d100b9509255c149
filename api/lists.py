"""Appointment lists, for the patient and for the practitioner: status filter, page size, cursor."""

from __future__ import annotations

from typing import Any

from flask import current_app

from . import cursors, parse, resources
from .errors import ApiError

STATUSES = ("upcoming", "past", "cancelled", "all")
LIMIT_MAX = 100


def appointment_page(function: str, user_id: int, owner_id: int, scope: str) -> dict[str, Any]:
    """{"data": [appointment, ...], "next_cursor"} for ?status=&limit=&cursor= of one list.

    The database decides what each status means and the order (db/functions/073);
    one row more than the page is asked for, to know whether a next page exists.
    """
    args = parse.query_args({"status", "limit", "cursor"})
    status = parse.query_choice(args.get("status"), "status", STATUSES) or "upcoming"
    limit = parse.query_int(args.get("limit"), "limit")
    if limit is None:
        limit = LIMIT_MAX
    elif not 1 <= limit <= LIMIT_MAX:
        raise ApiError(400, f"limit must be an integer from 1 to {LIMIT_MAX}")
    after_start, after_id = None, None
    if "cursor" in args:
        after_start, after_id = cursors.decode(args["cursor"], f"{scope}:{owner_id}", status)
    rows = current_app.extensions["medbook_db"].call(function, user_id, owner_id, limit + 1, status,
                                                     after_start, after_id)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = cursors.encode(f"{scope}:{owner_id}", status, rows[-1]["start_time"], rows[-1]["id"])
    return {"data": [resources.appointment(row) for row in rows], "next_cursor": next_cursor}
