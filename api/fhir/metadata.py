"""GET /fhir/R4/metadata: the CapabilityStatement, exactly what this facade supports.

INTERACTIONS and search.SEARCH_PARAMETERS are the lists the routes are built
against; tests/test_fhir.py checks that every interaction listed here is
served and every FHIR route is listed.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from flask import Blueprint

from .resources import REPLACES, RESCHEDULED_TO
from .search import RESULT_PARAMETERS, SEARCH_PARAMETERS
from .wire import BASE_PATH, FHIR_JSON, JSON_PATCH, base_url, respond

bp = Blueprint("fhir_metadata", __name__, url_prefix=BASE_PATH)

FHIR_VERSION = "4.0.1"
RELEASED = "2026-11-26"  # when this statement last changed (versions, Idempotency-Key, reschedule links)
INTERACTIONS: dict[str, tuple[str, ...]] = {
    "Schedule": ("read", "search-type"),
    "Slot": ("read", "search-type"),
    "Appointment": ("read", "search-type", "create", "update", "patch"),
    "Patient": ("read",),
    "Practitioner": ("read",),
}
# How each resource is versioned (http://hl7.org/fhir/versioning-policy). "versioned": every
# Slot and Appointment carries meta.versionId, and its read, create, update and patch send the
# ETag W/"n". Not "versioned-update", which R4 defines as "VersionId must be correct for
# updates": If-Match is honoured on an Appointment update or patch, but not required. No
# resource keeps its old versions, so there is no vread and no history (readHistory false).
VERSIONING = {"Schedule": "no-version", "Slot": "versioned", "Appointment": "versioned", "Patient": "no-version",
              "Practitioner": "no-version"}
DOCUMENTATION = {
    "Schedule": "One per practitioner: Schedule/{practitioner_id}, actor Practitioner/{practitioner_id}. "
                "Any signed-in user.",
    "Slot": "Slot/{slot_id}, schedule Schedule/{practitioner_id}; available is free, booked is busy. Any signed-in "
            "user reads a slot and searches free ones; busy ones are listed to their practitioner only. "
            "meta.versionId, and ETag W/\"n\" on read, change with every change of the slot (a booking too).",
    "Appointment": "Its patient and practitioner only. create books the one slot referenced for the signed-in "
                   "patient (status booked, that patient as the Patient participant); with an Idempotency-Key "
                   "header (as for POST /v1/appointments) a retry gets the first outcome again, with "
                   "Idempotent-Replayed: true (If-None-Exist is not supported: 400). update (PUT) and patch "
                   "(JSON Patch of /status) only cancel: status cancelled, optional cancelationReason.text; any "
                   "other change is 422 business-rule. meta.versionId and the ETag W/\"n\" change with every "
                   "change; update and patch honour If-Match: W/\"n\" (a stale version is 412, issue conflict, "
                   "and changes nothing); not required; no vread or history. A rescheduled appointment carries "
                   "the extension " + REPLACES + " (the one it replaced) or " + RESCHEDULED_TO
                   + " (the one that replaced it, on the cancelled one).",
    "Patient": "The patient themself, and practitioners they have appointments with.",
    "Practitioner": "Any signed-in user.",
}


def _software_version() -> str:
    try:
        return version("medbook-booking")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "unknown"


def _resource(resource_type: str) -> dict:
    entry = {
        "type": resource_type,
        "documentation": DOCUMENTATION[resource_type],
        "interaction": [{"code": code} for code in INTERACTIONS[resource_type]],
        "versioning": VERSIONING[resource_type],
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
    }
    parameters = SEARCH_PARAMETERS.get(resource_type, ())
    if parameters:
        entry["searchParam"] = [{"name": p.name, "definition": p.definition, "type": p.type,
                                 "documentation": p.documentation} for p in parameters]
    return entry


@bp.get("/metadata")
def capability_statement():
    """What this FHIR endpoint supports (no authentication)."""
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": RELEASED,
        "publisher": "Medbook",
        "kind": "instance",
        "software": {"name": "Medbook Booking", "version": _software_version()},
        "implementation": {"description": "Medbook Booking: an HL7 FHIR R4 scheduling facade over the same "
                                          "PostgreSQL functions as the /v1 REST API.", "url": base_url()},
        "fhirVersion": FHIR_VERSION,
        "format": [FHIR_JSON, "json"],
        "patchFormat": [JSON_PATCH],
        "rest": [{
            "mode": "server",
            "documentation": "Searches take only the parameters listed, plus " + ", ".join(RESULT_PARAMETERS)
                             + " (_count: page size 1-500, default 100; _cursor: only as given in a next link); "
                               "any other parameter is a 400. Bundles are searchset with total and next links.",
            "security": {"cors": False,
                         "description": "Authorization: Bearer <JWT> as for /v1 (HS256, sub = users.id, exp "
                                        "required); only this statement is served without one."},
            "resource": [_resource(resource_type) for resource_type in INTERACTIONS],
        }],
    }
    return respond(statement)
