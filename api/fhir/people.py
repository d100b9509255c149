"""Patient and Practitioner: read only, with the REST API's access rules.

A practitioner's directory entry is open to every signed-in user
(get_practitioner(), the directory's); a patient is read by themself and by the
practitioners they have appointments with (get_patient(), db/functions/122).
"""

from __future__ import annotations

from flask import Blueprint, current_app

from ..auth import current_user_id
from . import resources
from .wire import BASE_PATH, logical_id, respond

bp = Blueprint("fhir_people", __name__, url_prefix=BASE_PATH)


def _db():
    return current_app.extensions["medbook_db"]


@bp.get("/Patient/<patient_id>")
def read_patient(patient_id: str):
    """A patient, to themself and to their practitioners."""
    user_id = current_user_id()
    return respond(resources.patient(_db().call_one("get_patient", user_id, logical_id(patient_id, "Patient"))))


@bp.get("/Practitioner/<practitioner_id>")
def read_practitioner(practitioner_id: str):
    """A practitioner's name and specialty, to any signed-in user."""
    user_id = current_user_id()
    row = _db().call_one("get_practitioner", user_id, logical_id(practitioner_id, "Practitioner"))
    return respond(resources.practitioner(row))
