"""Appointments: patients book, cancel and reschedule; practitioners record attendance; both read their own."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from . import idempotency, lists, parse, resources
from .auth import current_user_id
from .idempotency import Outcome

bp = Blueprint("appointments", __name__, url_prefix="/v1")

REASON_MAX_LENGTH = 1000


def _db():
    return current_app.extensions["medbook_db"]


def _appointment(outcome: Outcome, status: int = 200) -> Response:
    response = jsonify(resources.appointment(outcome.row))
    response.status_code = status
    if status == 201:
        response.headers["Location"] = f"/v1/appointments/{outcome.row['id']}"
    return idempotency.mark(response, outcome.replayed)


@bp.post("/appointments")
def book_slot():
    """Book a slot for the signed-in patient (201 + Location)."""
    user_id = current_user_id()
    key = idempotency.key()
    body = parse.json_body({"slot_id"}, frozenset({"slot_id"}))
    return _appointment(idempotency.perform("book_slot", user_id, key, slot_id=parse.body_id(body, "slot_id")),
                        201)


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
    key = idempotency.key()
    body = parse.json_body({"reason"}, optional=True)
    return _appointment(idempotency.perform("cancel_appointment", user_id, key, appointment_id=aid,
                                            reason=parse.body_text(body, "reason", REASON_MAX_LENGTH)))


@bp.post("/appointments/<appointment_id>/reschedule")
def reschedule_appointment(appointment_id: str):
    """Move an appointment to another slot of its practitioner in one step (201 + Location of the new one)."""
    user_id = current_user_id()
    aid = parse.path_id(appointment_id, "appointment_id")
    key = idempotency.key()
    body = parse.json_body({"slot_id"}, frozenset({"slot_id"}))
    return _appointment(idempotency.perform("reschedule_appointment", user_id, key, appointment_id=aid,
                                            slot_id=parse.body_id(body, "slot_id")), 201)


@bp.post("/appointments/<appointment_id>/complete")
def complete_appointment(appointment_id: str):
    """Record that the patient came (the practitioner, at or after the start)."""
    user_id = current_user_id()
    aid = parse.path_id(appointment_id, "appointment_id")
    key = idempotency.key()
    parse.json_body(set(), optional=True)
    return _appointment(idempotency.perform("complete_appointment", user_id, key, appointment_id=aid))


@bp.post("/appointments/<appointment_id>/no-show")
def mark_no_show(appointment_id: str):
    """Record that the patient did not come (the practitioner, at or after the start)."""
    user_id = current_user_id()
    aid = parse.path_id(appointment_id, "appointment_id")
    key = idempotency.key()
    parse.json_body(set(), optional=True)
    return _appointment(idempotency.perform("mark_no_show", user_id, key, appointment_id=aid))


@bp.get("/appointments/<appointment_id>/history")
def list_appointment_history(appointment_id: str):
    """Every state change of an appointment, oldest first, to its patient or practitioner."""
    user_id = current_user_id()
    aid = parse.path_id(appointment_id, "appointment_id")
    parse.query_args(set())
    rows = _db().call("list_appointment_history", user_id, aid)
    return jsonify({"data": [resources.history_entry(row) for row in rows]})


@bp.get("/patients/<patient_id>/appointments")
def list_patient_appointments(patient_id: str):
    """The signed-in patient's appointments: upcoming (default), past, cancelled or all, a page at a time."""
    user_id = current_user_id()
    pid = parse.path_id(patient_id, "patient_id")
    return jsonify(lists.appointment_page("list_patient_appointments", user_id, pid, "patient"))
