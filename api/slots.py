"""Slots: practitioners publish, move and withdraw availability; anyone signed in browses it."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from . import parse, resources
from .auth import current_user_id

bp = Blueprint("slots", __name__, url_prefix="/v1")


def _db():
    return current_app.extensions["medbook_db"]


@bp.post("/practitioners/<practitioner_id>/slots")
def create_slot(practitioner_id: str):
    """Publish a slot for the signed-in practitioner (201 + Location)."""
    user_id = current_user_id()
    pid = parse.path_id(practitioner_id, "practitioner_id")
    body = parse.json_body({"start_time", "end_time"}, frozenset({"start_time", "end_time"}))
    row = _db().call_one("create_slot", user_id, pid,
                         parse.body_time(body, "start_time"), parse.body_time(body, "end_time"))
    response = jsonify(resources.slot(row))
    response.status_code = 201
    response.headers["Location"] = f"/v1/slots/{row['id']}"
    return response


@bp.get("/practitioners/<practitioner_id>/slots")
def list_available_slots(practitioner_id: str):
    """Available slots of a practitioner on a local date, or the next ones without a date."""
    user_id = current_user_id()
    pid = parse.path_id(practitioner_id, "practitioner_id")
    args = parse.query_args({"date", "tz"})
    rows = _db().call("list_available_slots", user_id, pid,
                      parse.query_date(args.get("date"), "date"),
                      parse.query_time_zone(args.get("tz"), "tz"), 100)
    return jsonify({"data": [resources.slot(row) for row in rows]})


@bp.get("/slots/<slot_id>")
def get_slot(slot_id: str):
    """One slot, to any signed-in user."""
    user_id = current_user_id()
    row = _db().call_one("get_slot", user_id, parse.path_id(slot_id, "slot_id"))
    return jsonify(resources.slot(row))


@bp.patch("/slots/<slot_id>")
def update_slot(slot_id: str):
    """Move or resize an available slot (its practitioner only)."""
    user_id = current_user_id()
    sid = parse.path_id(slot_id, "slot_id")
    body = parse.json_body({"start_time", "end_time"})
    row = _db().call_one("update_slot", user_id, sid,
                         parse.body_time(body, "start_time"), parse.body_time(body, "end_time"))
    return jsonify(resources.slot(row))


@bp.delete("/slots/<slot_id>")
def delete_slot(slot_id: str):
    """Withdraw an available slot (its practitioner only)."""
    user_id = current_user_id()
    _db().call_one("delete_slot", user_id, parse.path_id(slot_id, "slot_id"))
    return "", 204
