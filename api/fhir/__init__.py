"""An HL7 FHIR R4 scheduling facade under /fhir/R4, over the same booking functions as /v1.

A facade only: each route authenticates with the same bearer token, reads FHIR
JSON or search parameters into the arguments of one booking function, and
writes the rows it returns as FHIR resources. Who may do what, whether a slot
can be booked, the cancellation window, paging and counting are decided in
PostgreSQL, by book_slot(), cancel_appointment(), get_slot() ... and the
functions added for the facade (db/functions/120-139). Errors are the REST
API's problems (same status, same code) written as OperationOutcomes
(api/fhir/wire.py).

    metadata.py      GET /metadata: the CapabilityStatement
    scheduling.py    Schedule and Slot
    appointments.py  Appointment
    people.py        Patient and Practitioner
    search.py        search parameters, cursors, searchset Bundles
    resources.py     rows -> FHIR resources
    wire.py          media types, bodies, references, instants, OperationOutcomes
"""

from __future__ import annotations

from flask import Flask, Response, g, request

from ..errors import problem
from . import appointments, metadata, people, scheduling
from .wire import BASE_PATH, FhirError, operation_outcome

_UNDER_BASE = BASE_PATH + "/"


def init_app(app: Flask) -> None:
    for blueprint in (metadata.bp, scheduling.bp, appointments.bp, people.bp):
        app.register_blueprint(blueprint)

    @app.errorhandler(FhirError)
    def _fhir_error(exc: FhirError) -> Response:
        g.fhir_issue = exc.issue
        return problem(exc.status, exc.code, exc.detail)

    @app.after_request
    def _outcomes(response: Response) -> Response:
        """Under /fhir/, every problem (whoever raised it) leaves as an OperationOutcome."""
        path = request.path  # one look-up through the request proxy instead of two
        if path.startswith(_UNDER_BASE) or path == BASE_PATH:
            return operation_outcome(response)
        return response
