"""Appointment: read, search, create (book a slot), cancel by PUT or JSON Patch.

Every decision is a database function's: creating is book_slot_expecting()
(db/functions/123), which books with book_slot() itself, so a FHIR booking and
a REST booking race for a slot under the same guarantee; with an
Idempotency-Key it runs through perform_idempotently() (080), as REST bookings
do. A PUT is replace_appointment() (124), which compares the whole resource
with the stored one and cancels through cancel_appointment(); a PATCH is
cancel_appointment(). If-Match (W/"n") is passed to those two functions, which
compare it with the appointment's version under the row lock. This module only
reads the FHIR JSON and headers into those functions' arguments.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from .. import idempotency, parse
from ..auth import current_user_id
from . import resources, search
from .wire import (
    BASE_PATH,
    JSON_PATCH,
    FhirError,
    base_url,
    etag,
    invalid,
    logical_id,
    not_stored,
    parse_reference,
    parse_time,
    read_json,
    read_resource,
    respond,
    text,
)

bp = Blueprint("fhir_appointments", __name__, url_prefix=BASE_PATH)

REASON_MAX_LENGTH = 1000
# Every element of an R4 Appointment. Those this server keeps are read below;
# id, meta, text and created are the server's own and are ignored on input.
ELEMENTS = frozenset({
    "resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension",
    "modifierExtension", "identifier", "status", "cancelationReason", "serviceCategory", "serviceType",
    "specialty", "appointmentType", "reasonCode", "reasonReference", "priority", "description",
    "supportingInformation", "start", "end", "minutesDuration", "slot", "created", "comment",
    "patientInstruction", "basedOn", "participant", "requestedPeriod"})
KEPT = frozenset({"resourceType", "id", "meta", "text", "created", "status", "cancelationReason", "start", "end",
                  "slot", "participant", "extension"})
PARTICIPANT_ELEMENTS = frozenset({"actor", "status", "type", "required"})
PARTICIPATION_STATUSES = frozenset({"accepted", "declined", "tentative", "needs-action"})
# Participant actors FHIR allows that an appointment here never has.
ACTORS_NOT_KEPT = ("PractitionerRole", "RelatedPerson", "Device", "HealthcareService", "Location")
FROM_FHIR_STATUS = {fhir: ours for ours, fhir in resources.APPOINTMENT_STATUS.items()}


def _db():
    return current_app.extensions["medbook_db"]


def _appointment(body: dict[str, Any]) -> dict[str, Any]:
    """What an Appointment resource says, in the terms of the booking functions."""
    foreign = sorted(key for key in body if key.lstrip("_") not in ELEMENTS)
    if foreign:
        raise invalid(f"Not elements of an Appointment: {', '.join(foreign)[:200]}.", "structure")
    unkept = sorted(key for key in body if key not in KEPT)
    if unkept:
        raise not_stored(f"This server does not keep {', '.join(unkept)[:200]} of an Appointment; it keeps "
                         f"status, start, end, slot, participant and cancelationReason.")
    status = body.get("status")
    if not isinstance(status, str) or status not in resources.APPOINTMENT_STATUS_SEARCH:
        raise invalid("status must be an Appointment status code, e.g. booked", "code-invalid")
    if status not in FROM_FHIR_STATUS:
        raise not_stored(f"This server has no appointments with status {status}.")
    parsed = {"status": FROM_FHIR_STATUS[status], "reason": None, "slots": [], "patient": None,
              "practitioner": None, "start": None, "end": None, "rescheduled_from": None, "rescheduled_to": None}
    reason = body.get("cancelationReason")
    if reason is not None:
        if not isinstance(reason, dict) or set(reason) != {"text"}:
            raise not_stored("cancelationReason is kept as its text only: {\"text\": \"...\"}.")
        parsed["reason"] = text(reason["text"], "cancelationReason.text", REASON_MAX_LENGTH)
    for name in ("start", "end"):
        if name in body:
            parsed[name] = parse_time(body[name], name)[0]
    slots = body.get("slot", [])
    if not isinstance(slots, list) or not all(isinstance(item, dict) for item in slots):
        raise invalid("slot must be a list of references")
    for item in slots:
        if set(item) - {"reference", "display"}:
            raise not_stored("A slot is referred to by its reference (Slot/{id}) only.")
        parsed["slots"].append(parse_reference(item.get("reference"), ("Slot",), "slot.reference")[1])
    participants = body.get("participant", [])
    if not isinstance(participants, list) or not all(isinstance(item, dict) for item in participants):
        raise invalid("participant must be a list of participants")
    for item in participants:
        _participant(item, parsed)
    extensions = body.get("extension", [])
    if not isinstance(extensions, list) or not all(isinstance(item, dict) for item in extensions):
        raise invalid("extension must be a list of extensions")
    for item in extensions:
        _link(item, parsed)
    return parsed


def _link(item: dict[str, Any], parsed: dict[str, Any]) -> None:
    """A reschedule link (the only extensions kept): its URL and Appointment/{id}."""
    column = resources.LINKS.get(item.get("url"))
    if column is None:
        raise not_stored(f"This server keeps only the extensions {', '.join(resources.LINKS)}; "
                         f"not {str(item.get('url'))[:100]}.")
    value = item.get("valueReference")
    if set(item) != {"url", "valueReference"} or not isinstance(value, dict) or set(value) - {"reference", "display"}:
        raise not_stored(f"The extension {item['url']} is a valueReference to Appointment/{{id}}.")
    if parsed[column] is not None:
        raise not_stored(f"The extension {item['url']} is given once.")
    parsed[column] = parse_reference(value.get("reference"), ("Appointment",), "extension.valueReference")[1]


def _participant(item: dict[str, Any], parsed: dict[str, Any]) -> None:
    if set(item) - PARTICIPANT_ELEMENTS:
        raise not_stored(f"This server keeps a participant's actor and status only, not "
                         f"{', '.join(sorted(set(item) - PARTICIPANT_ELEMENTS))[:100]}.")
    if not isinstance(item.get("status"), str) or item["status"] not in PARTICIPATION_STATUSES:
        raise invalid(f"participant.status must be one of {', '.join(sorted(PARTICIPATION_STATUSES))}",
                      "code-invalid")
    actor = item.get("actor")
    if not isinstance(actor, dict) or "reference" not in actor or set(actor) - {"reference", "display"}:
        raise not_stored("Each participant names its actor by reference (Patient/{id} or Practitioner/{id}).")
    kind, rid = parse_reference(actor["reference"], ("Patient", "Practitioner"), "participant.actor.reference",
                                ACTORS_NOT_KEPT)
    key = kind.lower()
    if parsed[key] is not None:
        raise not_stored(f"An appointment here has one {kind} participant.")
    parsed[key] = rid


def _respond(row: dict[str, Any], status: int = 200, replayed: bool = False) -> Response:
    """The Appointment with its ETag (and Location when created; Idempotent-Replayed when replayed)."""
    headers = {"ETag": etag(row["version"])}
    if status == 201:
        headers["Location"] = f"{base_url()}Appointment/{row['id']}"
    return idempotency.mark(respond(resources.appointment(row), status, headers), replayed)


@bp.get("/Appointment/<appointment_id>")
def read_appointment(appointment_id: str):
    """One appointment, to its patient or practitioner."""
    user_id = current_user_id()
    return _respond(_db().call_one("get_appointment", user_id, logical_id(appointment_id, "Appointment")))


@bp.get("/Appointment")
def search_appointments():
    """The caller's appointments (as patient or practitioner) by date and status, in keyset pages."""
    user_id = current_user_id()
    found = search.parse("Appointment", statuses=resources.APPOINTMENT_STATUS_SEARCH)
    start_from, start_before = found.values.get("date", (None, None))
    rows = _db().call("search_appointments", user_id, found.values.get("patient"),
                      found.values.get("practitioner"), found.values.get("status"), start_from, start_before,
                      found.count, found.cursor)
    return respond(search.bundle(found, rows, resources.appointment))


@bp.post("/Appointment")
def create_appointment():
    """Book the one slot named, for the signed-in patient named as the Patient participant (201 + Location);
    with an Idempotency-Key, at most once (a retry gets the first outcome again)."""
    user_id = current_user_id()
    if "If-None-Exist" in request.headers:
        raise FhirError(400, "Conditional create (If-None-Exist) is not supported; send an Idempotency-Key to make "
                             "a retried create safe.", "not-supported", "validation_error")
    key = idempotency.key()
    wanted = _appointment(read_resource("Appointment"))
    if wanted["status"] != "booked":
        raise not_stored("An appointment is created booked (status booked); it can be cancelled afterwards.")
    if wanted["reason"] is not None:
        raise not_stored("A new appointment has no cancelationReason.")
    if len(wanted["slots"]) != 1:
        raise (FhirError(400, "slot is required: the one slot to book.", "required", "validation_error")
               if not wanted["slots"] else not_stored("An appointment here books exactly one slot."))
    if wanted["patient"] is None:
        raise FhirError(400, "A Patient participant is required: the signed-in patient.", "required",
                        "validation_error")
    if wanted["rescheduled_from"] is not None or wanted["rescheduled_to"] is not None:
        raise not_stored("A new appointment replaces none; to move one to another slot, reschedule it at "
                         "POST /v1/appointments/{id}/reschedule.")
    outcome = idempotency.perform("book_slot_expecting", user_id, key, slot_id=wanted["slots"][0],
                                  patient_id=wanted["patient"], practitioner_id=wanted["practitioner"],
                                  start_time=wanted["start"], end_time=wanted["end"])
    return _respond(outcome.row, 201, outcome.replayed)


@bp.put("/Appointment/<appointment_id>")
def update_appointment(appointment_id: str):
    """Replace an appointment: only status booked -> cancelled (and its reason) can change; with If-Match, only
    the version named."""
    user_id = current_user_id()
    aid = logical_id(appointment_id, "Appointment")
    if_match = parse.if_match(weak=True)
    body = read_resource("Appointment")
    if body.get("id") != appointment_id:
        raise invalid(f"The resource's id must be the id in the URL ({appointment_id[:40]}).")
    wanted = _appointment(body)
    if len(wanted["slots"]) > 1:
        raise not_stored("An appointment here has one slot.")
    return _respond(_db().call_one(
        "replace_appointment", user_id, aid, wanted["status"], wanted["slots"][0] if wanted["slots"] else None,
        wanted["patient"], wanted["practitioner"], wanted["start"], wanted["end"], wanted["reason"],
        wanted["rescheduled_from"], wanted["rescheduled_to"], if_match))


@bp.patch("/Appointment/<appointment_id>")
def patch_appointment(appointment_id: str):
    """JSON Patch that cancels: replace /status with cancelled, optionally adding /cancelationReason; with
    If-Match, only the version named."""
    user_id = current_user_id()
    aid = logical_id(appointment_id, "Appointment")
    if_match = parse.if_match(weak=True)
    operations = read_json((JSON_PATCH,))
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise invalid("A JSON Patch is a list of operations.", "structure")
    status, reason = None, None
    for op in operations:
        if not isinstance(op.get("op"), str) or not isinstance(op.get("path"), str) or "value" not in op:
            raise invalid("Each operation has op, path and value.", "structure")
        if op["op"] not in ("add", "replace"):
            raise not_stored("Only add and replace operations are supported.")
        if op["path"] == "/status":
            status = op["value"]
        elif op["path"] == "/cancelationReason/text":
            reason = text(op["value"], "cancelationReason.text", REASON_MAX_LENGTH)
        elif op["path"] == "/cancelationReason" and isinstance(op["value"], dict) and set(op["value"]) == {"text"}:
            reason = text(op["value"]["text"], "cancelationReason.text", REASON_MAX_LENGTH)
        else:
            raise not_stored("A patch can change /status (to cancelled) and /cancelationReason only.")
    if status != "cancelled":
        raise not_stored("A patch cancels an appointment: replace /status with cancelled.")
    return _respond(_db().call_one("cancel_appointment", user_id, aid, reason, if_match))
