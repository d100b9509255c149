"""A practitioner's availability plan: weekly schedule rules, publishing them, and time off."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from psycopg.types.json import Jsonb

from . import parse, resources
from .auth import current_user_id

bp = Blueprint("schedules", __name__, url_prefix="/v1")

REASON_MAX_LENGTH = 1000


def _db():
    return current_app.extensions["medbook_db"]


@bp.get("/practitioners/<practitioner_id>/schedule")
def get_schedule(practitioner_id: str):
    """The practitioner's weekly rules (that practitioner only)."""
    user_id = current_user_id()
    parse.query_args(set())
    rows = _db().call("get_schedule", user_id, parse.path_id(practitioner_id, "practitioner_id"))
    return jsonify({"rules": [resources.schedule_rule(row) for row in rows]})


@bp.put("/practitioners/<practitioner_id>/schedule")
def set_schedule(practitioner_id: str):
    """Replace the weekly rules; the database validates every rule (that practitioner only)."""
    user_id = current_user_id()
    pid = parse.path_id(practitioner_id, "practitioner_id")
    body = parse.json_body({"rules"}, frozenset({"rules"}))
    rows = _db().call("set_schedule", user_id, pid, Jsonb(parse.body_objects(body, "rules")))
    return jsonify({"rules": [resources.schedule_rule(row) for row in rows]})


@bp.post("/practitioners/<practitioner_id>/schedule/publish")
def publish_schedule(practitioner_id: str):
    """Create the slots the rules describe through a local date (that practitioner only)."""
    user_id = current_user_id()
    pid = parse.path_id(practitioner_id, "practitioner_id")
    body = parse.json_body({"through"}, frozenset({"through"}))
    row = _db().call_one("publish_schedule", user_id, pid, parse.body_date(body, "through"))
    return jsonify({"created": row["created"], "skipped": row["skipped"]})


@bp.post("/practitioners/<practitioner_id>/time-off")
def create_time_off(practitioner_id: str):
    """Record time off; the available slots it covers go, the booked ones are listed (201)."""
    user_id = current_user_id()
    pid = parse.path_id(practitioner_id, "practitioner_id")
    body = parse.json_body({"start_time", "end_time", "reason"}, frozenset({"start_time", "end_time"}))
    row = _db().call_one("create_time_off", user_id, pid, parse.body_time(body, "start_time"),
                         parse.body_time(body, "end_time"), parse.body_text(body, "reason", REASON_MAX_LENGTH))
    response = jsonify(resources.created_time_off(row))
    response.status_code = 201
    return response


@bp.get("/practitioners/<practitioner_id>/time-off")
def list_time_off(practitioner_id: str):
    """The practitioner's time off that has not ended (that practitioner only)."""
    user_id = current_user_id()
    pid = parse.path_id(practitioner_id, "practitioner_id")
    parse.query_args(set())
    rows = _db().call("list_time_off", user_id, pid, 500)
    return jsonify({"data": [resources.time_off(row) for row in rows]})


@bp.delete("/practitioners/<practitioner_id>/time-off/<time_off_id>")
def delete_time_off(practitioner_id: str, time_off_id: str):
    """Remove time off; no slot comes back by itself (that practitioner only)."""
    user_id = current_user_id()
    _db().call_one("delete_time_off", user_id, parse.path_id(practitioner_id, "practitioner_id"),
                   parse.path_id(time_off_id, "time_off_id"))
    return "", 204
