"""Appointments: patients book and cancel; patients and practitioners read their own."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from . import parse, resources
from .auth import current_user_id

bp = Blueprint("appointments", __name__, url_prefix="/v1")

REASON_MAX_LENGTH = 1000


def _db():
    return current_app.extensions["medbook_db"]


@bp.post("/appointments")
def book_slot():
    """Book a slot for the signed-in patient (201 + Location)."""
    user_id = current_user_id()
    body = parse.json_body({"slot_id"}, frozenset({"slot_id"}))
    row = _db().call_one("book_slot", user_id, parse.body_id(body, "slot_id"))
    response = jsonify(resources.appointment(row))
    response.status_code = 201
    response.headers["Location"] = f"/v1/appointments/{row['id']}"
    return response


@bp.get("/appointments/<appointment_id>")
def get_appointment(appointment_id: str):
    """One appointment, to its patient or practitioner."""
    user_id = current_user_id()
    row = _db().call_one("get_appointment", user_id, parse.path_id(appointment_id, "appointment_id"))
    return jsonify(resources.appointment(row))


@bp.post("/appointments/<appointment_id>/cancel")
def cancel_appointment(appointment_id: str):
    """Cancel an appointment (its patient or practitioner, within the window)."""
    user_id = current_user_id()
    aid = parse.path_id(appointment_id, "appointment_id")
    body = parse.json_body({"reason"}, optional=True)
    row = _db().call_one("cancel_appointment", user_id, aid,
                         parse.body_text(body, "reason", REASON_MAX_LENGTH))
    return jsonify(resources.appointment(row))


@bp.get("/patients/<patient_id>/appointments")
def list_upcoming_appointments(patient_id: str):
    """The signed-in patient's upcoming booked appointments, soonest first."""
    user_id = current_user_id()
    pid = parse.path_id(patient_id, "patient_id")
    parse.query_args(set())
    rows = _db().call("list_upcoming_appointments", user_id, pid, 100)
    return jsonify({"data": [resources.appointment(row) for row in rows]})
