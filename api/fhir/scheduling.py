"""Schedule and Slot: a practitioner's one schedule, and the slots on it.

Schedule/{id} is the practitioner with that id (one schedule each), read
through get_booking_settings(), which any signed-in user may call and which
says whether the practitioner exists. Slots are read with get_slot() and
searched with search_slots() (db/functions/120), which decide who sees what;
a slot carries its version (meta.versionId, ETag W/"n"). Slots are not written
through FHIR, so no If-Match applies here.
"""

from __future__ import annotations

import psycopg
from flask import Blueprint, current_app

from ..auth import current_user_id
from . import resources, search
from .wire import BASE_PATH, FhirError, etag, logical_id, respond

bp = Blueprint("fhir_scheduling", __name__, url_prefix=BASE_PATH)


def _db():
    return current_app.extensions["medbook_db"]


def _required(found: search.Search, name: str) -> None:
    if name not in found.values:
        raise FhirError(400, f"A {found.resource_type} search needs {name}.", "required", "validation_error")


@bp.get("/Schedule/<practitioner_id>")
def read_schedule(practitioner_id: str):
    """The schedule of the practitioner with this id, to any signed-in user."""
    user_id = current_user_id()
    row = _db().call_one("get_booking_settings", user_id, logical_id(practitioner_id, "Schedule"))
    return respond(resources.schedule(row["practitioner_id"]))


@bp.get("/Schedule")
def search_schedules():
    """The schedule of the practitioner named by actor (an empty searchset when there is none)."""
    user_id = current_user_id()
    found = search.parse("Schedule", statuses={}, paged=False)  # one schedule at most: no pages
    _required(found, "actor")
    try:
        rows = _db().call("get_booking_settings", user_id, found.values["actor"])
    except psycopg.Error as exc:
        if exc.sqlstate != "MB404":
            raise
        rows = []
    return respond(search.searchset(len(rows), [search.self_link("Schedule")],
                                    [resources.schedule(row["practitioner_id"]) for row in rows]))


@bp.get("/Slot/<slot_id>")
def read_slot(slot_id: str):
    """One slot, free or busy, to any signed-in user, with its ETag (W/"version")."""
    user_id = current_user_id()
    row = _db().call_one("get_slot", user_id, logical_id(slot_id, "Slot"))
    return respond(resources.slot(row), headers={"ETag": etag(row["version"])})


@bp.get("/Slot")
def search_slots():
    """The slots of one schedule that have not started, by status and start, in keyset pages."""
    user_id = current_user_id()
    found = search.parse("Slot", statuses=resources.SLOT_STATUS_SEARCH)
    _required(found, "schedule")
    start_from, start_before = found.values.get("start", (None, None))
    rows = _db().call("search_slots", user_id, found.values["schedule"], found.values.get("status"),
                      start_from, start_before, found.count, found.cursor)
    return respond(search.bundle(found, rows, resources.slot))
