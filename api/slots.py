"""Slots: practitioners publish, move and withdraw availability; anyone signed in browses it."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from . import idempotency, parse, resources
from .auth import current_user_id
from .errors import ApiError

bp = Blueprint("slots", __name__, url_prefix="/v1")

LIST_LIMIT = 100


def _db():
    return current_app.extensions["medbook_db"]


def _slot(row: dict, status: int = 200) -> Response:
    """A slot with its strong ETag (its version)."""
    response = jsonify(resources.slot(row))
    response.status_code = status
    response.headers["ETag"] = resources.etag(row)
    return response


@bp.post("/practitioners/<practitioner_id>/slots")
def create_slot(practitioner_id: str):
    """Publish a slot for the signed-in practitioner (201 + Location)."""
    user_id = current_user_id()
    pid = parse.path_id(practitioner_id, "practitioner_id")
    key = idempotency.key()
    body = parse.json_body({"start_time", "end_time"}, frozenset({"start_time", "end_time"}))
    outcome = idempotency.perform("create_slot", user_id, key, practitioner_id=pid,
                                  start_time=parse.body_time(body, "start_time"),
                                  end_time=parse.body_time(body, "end_time"))
    response = _slot(outcome.row, 201)
    response.headers["Location"] = f"/v1/slots/{outcome.row['id']}"
    return idempotency.mark(response, outcome.replayed)


@bp.get("/practitioners/<practitioner_id>/slots")
def list_available_slots(practitioner_id: str):
    """A practitioner's slots by local date or range of dates, by status, keyset-paged."""
    user_id = current_user_id()
    pid = parse.path_id(practitioner_id, "practitioner_id")
    args = parse.query_args({"date", "from", "to", "tz", "status", "limit", "cursor"})
    limit = parse.query_int(args.get("limit"), "limit")
    rows = _db().call("list_slots", user_id, pid,
                      parse.query_date(args.get("date"), "date"),
                      parse.query_date(args.get("from"), "from"),
                      parse.query_date(args.get("to"), "to"),
                      parse.query_time_zone(args.get("tz"), "tz"), args.get("status"),
                      LIST_LIMIT if limit is None else limit, args.get("cursor"))
    return jsonify(resources.page(rows, resources.listed_slot))


@bp.post("/practitioners/<practitioner_id>/slots/bulk")
def create_slots(practitioner_id: str):
    """Publish 1 to 500 slots at once, all or nothing (201); every failing item is reported."""
    user_id = current_user_id()
    pid = parse.path_id(practitioner_id, "practitioner_id")
    key = idempotency.key()
    body = parse.json_body({"slots"}, frozenset({"slots"}))
    items = parse.body_objects(body, "slots")
    errors = parse.item_errors_of_times(items, ("start_time", "end_time"))
    if errors:
        raise ApiError(400, f"{len(errors)} of {len(items)} slots cannot be read; nothing was created.",
                       errors=errors)
    outcome = idempotency.perform("create_slots", user_id, key, many=True, practitioner_id=pid,
                                  start_times=[parse.body_time(i, "start_time") for i in items],
                                  end_times=[parse.body_time(i, "end_time") for i in items])
    response = jsonify({"data": [resources.slot(row) for row in outcome.row]})
    response.status_code = 201
    return idempotency.mark(response, outcome.replayed)


@bp.delete("/practitioners/<practitioner_id>/slots")
def delete_slots(practitioner_id: str):
    """Delete the available slots that start in a range of local dates (that practitioner only)."""
    user_id = current_user_id()
    pid = parse.path_id(practitioner_id, "practitioner_id")
    args = parse.query_args({"from", "to"})
    row = _db().call_one("delete_slots", user_id, pid, parse.query_date(args.get("from"), "from"),
                         parse.query_date(args.get("to"), "to"))
    return jsonify({"deleted": row["deleted"], "booked_slot_ids": row["booked_slot_ids"]})


@bp.get("/slots/<slot_id>")
def get_slot(slot_id: str):
    """One slot, to any signed-in user, with its ETag."""
    user_id = current_user_id()
    row = _db().call_one("get_slot", user_id, parse.path_id(slot_id, "slot_id"))
    return _slot(row)


@bp.patch("/slots/<slot_id>")
def update_slot(slot_id: str):
    """Move or resize an available slot (its practitioner only; with If-Match, only if unchanged)."""
    user_id = current_user_id()
    sid = parse.path_id(slot_id, "slot_id")
    if_match = parse.if_match()
    body = parse.json_body({"start_time", "end_time"})
    row = _db().call_one("update_slot", user_id, sid,
                         parse.body_time(body, "start_time"), parse.body_time(body, "end_time"), if_match)
    return _slot(row)


@bp.delete("/slots/<slot_id>")
def delete_slot(slot_id: str):
    """Withdraw an available slot (its practitioner only; with If-Match, only if unchanged)."""
    user_id = current_user_id()
    sid = parse.path_id(slot_id, "slot_id")
    _db().call_one("delete_slot", user_id, sid, parse.if_match())
    return "", 204
