"""The FHIR resources of the facade, built from the rows the booking functions return.

Mapping only: each function turns one REST-shaped row (the same row the /v1
API turns into JSON) into the FHIR R4 resource that says the same thing, and
no more. Status codes map one to one (STATUS tables); a FHIR code with no
counterpart here is None, which a search turns into "matches nothing".

Versions: a slot's and an appointment's version (a column bumped by trigger on
every update) is meta.versionId, and the ETag W/"n" of a read, create, update or
patch. Rescheduling: R4 has no element for it, so the links are extensions
(REPLACES on the new appointment, RESCHEDULED_TO on the cancelled one).
"""

from __future__ import annotations

from typing import Any

from .wire import instant, reference

# Our slot status -> FHIR Slot.status (http://hl7.org/fhir/slotstatus).
SLOT_STATUS = {"available": "free", "booked": "busy"}
# FHIR code -> ours, for searches: every code of the value set.
SLOT_STATUS_SEARCH: dict[str, str | None] = {
    "free": "available", "busy": "booked", "busy-unavailable": None, "busy-tentative": None,
    "entered-in-error": None}

# Our appointment status -> FHIR Appointment.status (http://hl7.org/fhir/appointmentstatus).
# completed and no_show are the attendance states of issue 10; mapped ahead of them, so
# that whichever lands first, no appointment can be a status this module cannot write.
APPOINTMENT_STATUS = {"booked": "booked", "cancelled": "cancelled", "completed": "fulfilled", "no_show": "noshow"}
APPOINTMENT_STATUS_SEARCH: dict[str, str | None] = {
    "proposed": None, "pending": None, "booked": "booked", "arrived": None, "fulfilled": "completed",
    "cancelled": "cancelled", "noshow": "no_show", "entered-in-error": None, "checked-in": None, "waitlist": None}

# The appointment this one replaced (rescheduled_from): R5's Appointment.replaces, in R4
# through its cross-version extension (package hl7.fhir.uv.xver-r5.r4).
REPLACES = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.replaces"
# The appointment that replaced this cancelled one (rescheduled_to). R5 has no element
# for this direction, so it is Medbook's own extension (a URI, like urn:medbook:problem).
RESCHEDULED_TO = "urn:medbook:fhir:extension:appointment-rescheduled-to"
# Extension URL -> the appointment column it carries.
LINKS = {REPLACES: "rescheduled_from", RESCHEDULED_TO: "rescheduled_to"}


def meta(row: dict[str, Any]) -> dict[str, str]:
    return {"versionId": str(row["version"])}


def slot(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Slot",
        "id": str(row["id"]),
        "meta": meta(row),
        "schedule": reference("Schedule", row["practitioner_id"]),
        "status": SLOT_STATUS[row["status"]],
        "start": instant(row["start_time"]),
        "end": instant(row["end_time"]),
    }


def appointment(row: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": str(row["id"]),
        "meta": meta(row),
    }
    links = [{"url": url, "valueReference": reference("Appointment", row[column])}
             for url, column in LINKS.items() if row[column] is not None]
    if links:
        resource["extension"] = links
    resource["status"] = APPOINTMENT_STATUS[row["status"]]
    if row["cancellation_reason"] is not None:
        resource["cancelationReason"] = {"text": row["cancellation_reason"]}
    resource["start"] = instant(row["start_time"])
    resource["end"] = instant(row["end_time"])
    if row["slot_id"] is not None:
        resource["slot"] = [reference("Slot", row["slot_id"])]
    resource["created"] = instant(row["booked_at"])
    resource["participant"] = [
        {"actor": reference("Patient", row["patient_id"]), "status": "accepted"},
        {"actor": reference("Practitioner", row["practitioner_id"]), "status": "accepted"},
    ]
    return resource


def schedule(practitioner_id: int) -> dict[str, Any]:
    """A practitioner's one Schedule: its id is the practitioner's."""
    return {
        "resourceType": "Schedule",
        "id": str(practitioner_id),
        "active": True,
        "actor": [reference("Practitioner", practitioner_id)],
    }


def patient(row: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient", "id": str(row["id"]), "active": True}
    if row["name"]:
        resource["name"] = [{"text": row["name"]}]
    if row["email"]:
        resource["telecom"] = [{"system": "email", "value": row["email"]}]
    return resource


def practitioner(row: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Practitioner", "id": str(row["id"]), "active": True}
    if row["name"]:
        resource["name"] = [{"text": row["name"]}]
    if row["specialty"]:
        resource["qualification"] = [{"code": {"text": row["specialty"]}}]
    return resource
