"""A search/read/create/cancel round trip through a real FHIR client library: fhirclient.

fhirclient (SMART on FHIR's Python client, R4 models) talks HTTP with requests,
so the app is served on a loopback port by werkzeug in a thread. It can carry
our bearer token: its OAuth2 auth object signs every request with
`Authorization: Bearer <access_token>` once it holds one, so the test hands it
a token instead of running an OAuth flow. Every body the server sends under
/fhir/ is also parsed with the fhir.resources R4B models on the way out
(a WSGI wrapper), and fhirclient parses it again with its own R4 models.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from conftest import JWT_SECRET, NOW, make_slot
from fhir_contract import validate_resource
from fhirclient import client as fhir
from fhirclient.auth import FHIROAuth2Auth
from fhirclient.models.appointment import Appointment, AppointmentParticipant
from fhirclient.models.codeableconcept import CodeableConcept
from fhirclient.models.fhirreference import FHIRReference
from fhirclient.models.patient import Patient
from fhirclient.models.slot import Slot
from werkzeug.serving import make_server

from api import auth, create_app

START = NOW + timedelta(days=3)


class CheckedApp:
    """WSGI middleware: parses every /fhir/ response body with the R4B models, recording failures."""

    def __init__(self, app) -> None:
        self.app, self.checked, self.failures = app, 0, []

    def __call__(self, environ, start_response):
        body = b"".join(self.app(environ, start_response))
        if environ["PATH_INFO"].startswith("/fhir/"):
            try:
                validate_resource(json.loads(body))
                self.checked += 1
            except Exception as exc:  # recorded, asserted by the test
                self.failures.append(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}: {exc}")
        return [body]


@pytest.fixture
def live(db, admin, api_route) -> Iterator[tuple[str, CheckedApp]]:
    app = create_app({"DATABASE_URL": api_route["url"], "JWT_SECRET": JWT_SECRET, **api_route["config"]})
    checked = CheckedApp(app.wsgi_app)
    app.wsgi_app = checked
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/fhir/R4", checked
    finally:
        server.shutdown()
        thread.join(timeout=10)
        app.extensions["medbook_db"].close()


def connect(base: str, user_id: int) -> fhir.FHIRClient:
    """A fhirclient that has read the CapabilityStatement and signs requests with the user's token."""
    smart = fhir.FHIRClient(settings={"app_id": "medbook-tests", "api_base": base})
    smart.prepare()  # GET metadata, parsed into fhirclient's CapabilityStatement
    smart.server.auth = FHIROAuth2Auth(state={"access_token": auth.mint(JWT_SECRET, user_id)})
    return smart


def test_round_trip_through_fhirclient(live, admin, world):
    base, checked = live
    slots = [make_slot(admin, world, START + timedelta(hours=i)) for i in range(5)]
    patient = connect(base, world.patient_user)
    statement = patient.server.capabilityStatement
    assert statement.fhirVersion == "4.0.1"
    assert {r.type for r in statement.rest[0].resource} >= {"Slot", "Appointment", "Schedule"}

    # Search: free slots of the practitioner's schedule from 13:00 that day, two per page; the client
    # follows `next`. (fhirclient's own $gte operator writes the pre-R4 ">=" syntax; R4 prefixes are
    # written into the values.)
    search = Slot.where(struct={"schedule": f"Schedule/{world.practitioner}", "status": "free",
                                "start": {"$and": ["ge2027-03-04T13:00:00Z", "lt2027-03-05"]}, "_count": "2"})
    found = list(search.perform_resources_iter(patient.server))
    assert [slot.id for slot in found] == [str(s["id"]) for s in slots[1:]]
    assert all(slot.status == "free" for slot in found)

    # Read.
    slot = Slot.read(found[0].id, patient.server)
    assert slot.start.isostring.startswith("2027-03-04T13:00:00") and slot.schedule.reference \
        == f"Schedule/{world.practitioner}"

    # Create: book it.
    wanted = Appointment()
    wanted.status = "booked"
    wanted.slot = [FHIRReference({"reference": f"Slot/{slot.id}"})]
    wanted.participant = [AppointmentParticipant({"actor": {"reference": f"Patient/{world.patient}"},
                                                  "status": "accepted"})]
    created = Appointment(wanted.create(patient.server))
    assert created.status == "booked" and created.slot[0].reference == f"Slot/{slot.id}"
    assert Slot.read(slot.id, patient.server).status == "busy"

    # Cancel: read, change the status, PUT it back (fhirclient's update).
    appointment = Appointment.read(created.id, patient.server)
    appointment.status = "cancelled"
    appointment.cancelationReason = CodeableConcept({"text": "feeling better"})
    appointment.update(patient.server)
    cancelled = Appointment.read(created.id, patient.server)
    assert cancelled.status == "cancelled" and cancelled.cancelationReason.text == "feeling better"
    assert Slot.read(slot.id, patient.server).status == "free"

    mine = Appointment.where(struct={"patient": f"Patient/{world.patient}", "status": "cancelled"})
    assert [a.id for a in mine.perform_resources_iter(patient.server)] == [created.id]
    me = Patient.read(str(world.patient), patient.server)
    assert me.id == str(world.patient)

    # The practitioner sees who booked: the patient, through the appointment's participant.
    practitioner = connect(base, world.practitioner_user)
    theirs = Appointment.where(struct={"practitioner": f"Practitioner/{world.practitioner}"})
    appointments = list(theirs.perform_resources_iter(practitioner.server))
    assert [a.id for a in appointments] == [created.id]
    patient_ref = next(p.actor.reference for p in appointments[0].participant if p.actor.reference.startswith("Pat"))
    assert Patient.read_from(patient_ref, practitioner.server).name[0].text.startswith("User ")

    assert checked.failures == [] and checked.checked >= 12
