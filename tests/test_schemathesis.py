"""schemathesis against the live app: every operation, valid and invalid input, real tokens.

For each operation of api/openapi.json, schemathesis generates requests from
the document (schema-valid ones and schema-breaking ones), sends them to the
app through WSGI, and checks each response: no 5xx, only documented status
codes, content types and headers, and bodies that match their schemas; a
request that breaks the schema must be refused.

Requests carry bearer tokens of real users (practitioner, patient, a user with
neither profile), and path ids are drawn mostly from rows that exist (free,
booked and past slots, booked and cancelled appointments), so the generated
requests reach the booking functions instead of stopping at authentication or
a 404. The database persists across the examples of one operation, so later
examples meet the state earlier ones left (booked slots, cancellations).

The stateful test chains calls along the document's links, every scenario from
the same database state (put back before each one), so that a failure replays
and shrinks.

Examples per operation and mode: MEDBOOK_SCHEMATHESIS_EXAMPLES (default 25);
stateful scenarios: MEDBOOK_SCHEMATHESIS_STATEFUL_EXAMPLES (default 200).
"""

from __future__ import annotations

import copy
import itertools
import os
from datetime import timedelta

import pytest
import schemathesis
from conftest import NOW, add_patient, add_user, bearer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.docs import openapi_document

EXAMPLES = int(os.environ.get("MEDBOOK_SCHEMATHESIS_EXAMPLES", "25"))
# Scenarios of the stateful test (each up to 8 calls): MEDBOOK_SCHEMATHESIS_STATEFUL_EXAMPLES.
STATEFUL_EXAMPLES = int(os.environ.get("MEDBOOK_SCHEMATHESIS_STATEFUL_EXAMPLES", "200"))
# make fuzz (MEDBOOK_SCHEMATHESIS_FUZZ=on): new random scenarios on every run, and a second
# stateful pass that also follows the links schemathesis infers. The suite's stateful pass is
# derandomized: the same scenarios on every run.
FUZZ = os.environ.get("MEDBOOK_SCHEMATHESIS_FUZZ", "").lower() in {"1", "on", "true", "yes"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection]
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}

# Times around the test clock, so generated slots are often acceptable.
TIMES = [(NOW + timedelta(minutes=30 * k)).isoformat() for k in (*range(4, 16), -2, -1, 0, 1, 2, 3)]
# Whose token an operation's requests carry first (Hypothesis leans towards the first).
PATIENT_OPERATIONS = {("/v1/appointments", "POST"), ("/v1/appointments/{appointment_id}/cancel", "POST"),
                      ("/v1/appointments/{appointment_id}/reschedule", "POST"),
                      ("/v1/patients/{patient_id}/appointments", "GET"), ("/fhir/R4/Appointment", "POST"),
                      ("/fhir/R4/Appointment", "GET"),
                      ("/fhir/R4/Appointment/{appointment_id}", "PUT"),
                      ("/fhir/R4/Appointment/{appointment_id}", "PATCH")}

# Search path -> (parameter, referenced type, ids key) that steer() fills with a real row.
FHIR_SEARCH_REFERENCES = {"/fhir/R4/Appointment": ("patient", "Patient", "patient_id"),
                          "/fhir/R4/Slot": ("schedule", "Schedule", "practitioner_id"),
                          "/fhir/R4/Schedule": ("actor", "Practitioner", "practitioner_id")}

OPERATIONS = sorted((path, method.upper()) for path, item in openapi_document()["paths"].items()
                    for method in item if method in HTTP_METHODS)


@pytest.fixture
def seeded(admin, world):
    """Rows for the generated requests to hit: ids by path parameter, and callers' tokens."""
    slots = []
    for day in range(1, 5):
        start = NOW + timedelta(days=day)
        slots.append(admin.execute(
            "SELECT id FROM create_slot(%s, %s, %s, %s)",
            (world.practitioner_user, world.practitioner, start, start + timedelta(minutes=30))).fetchone()["id"])
    booked = admin.execute("SELECT id FROM book_slot(%s, %s)", (world.patient_user, slots[0])).fetchone()["id"]
    cancelled = admin.execute("SELECT id FROM book_slot(%s, %s)", (world.patient_user, slots[1])).fetchone()["id"]
    admin.execute("SELECT cancel_appointment(%s, %s, 'moved')", (world.patient_user, cancelled))
    past = admin.execute(
        "INSERT INTO availability_slots (practitioner_id, start_time, end_time) VALUES (%s, %s, %s) RETURNING id",
        (world.practitioner, NOW - timedelta(hours=2), NOW - timedelta(hours=1))).fetchone()["id"]
    _, extra_patient = add_patient(admin)
    ids = {
        "practitioner_id": [world.practitioner, world.other_practitioner],
        "slot_id": [*slots, past],
        "appointment_id": [booked, cancelled],
        "patient_id": [world.patient, world.other_patient, extra_patient],
        "filename": ["swagger-ui-bundle.js", "swagger-ui.css"],
    }
    # The order matters: see PATIENT_OPERATIONS.
    users = [world.practitioner_user, world.other_practitioner_user, world.patient_user,
             world.other_patient_user, world.stranger_user, add_user(admin, "staff")]
    return ids, [bearer(user)["Authorization"] for user in users]


def steer(case, data, ids) -> None:
    """Point some path ids and body values of a schema-valid case at real rows and near times."""
    # The body is copied first: schemathesis hands out the document's example bodies
    # themselves, and a change made in place would carry over into later examples.
    if isinstance(case.body, dict):
        case.body = copy.deepcopy(case.body)
    for name in list(case.path_parameters or {}):
        # Hypothesis leans towards False: that choice picks a real row.
        if name in ids and not data.draw(st.booleans(), label=f"generated {name}"):
            case.path_parameters[name] = data.draw(st.sampled_from(ids[name]), label=name)
    # FHIR searches need a reference to a real row to get past parsing (searches without one are 400).
    if case.method == "GET" and case.path in FHIR_SEARCH_REFERENCES and \
            not data.draw(st.booleans(), label="generated search reference"):
        name, kind, key = FHIR_SEARCH_REFERENCES[case.path]
        case.query = {**(case.query or {}), name: f"{kind}/{data.draw(st.sampled_from(ids[key]), label=name)}"}
    if isinstance(case.body, dict) and not data.draw(st.booleans(), label="generated body values"):
        if "slot_id" in case.body:
            case.body["slot_id"] = data.draw(st.sampled_from(ids["slot_id"]), label="body slot_id")
        start = data.draw(st.integers(0, len(TIMES) - 1), label="start index")
        length = data.draw(st.integers(1, 4), label="length in half hours")
        if "start_time" in case.body:
            case.body["start_time"] = TIMES[start]
        if "end_time" in case.body:
            case.body["end_time"] = TIMES[min(start + length, len(TIMES) - 1)]
        if case.body.get("resourceType") == "Appointment":  # the FHIR facade: a real slot, patient and id
            slot = data.draw(st.sampled_from(ids["slot_id"]), label="body slot")
            patient = data.draw(st.sampled_from(ids["patient_id"]), label="body patient")
            case.body.update(status=data.draw(st.sampled_from(["booked", "cancelled"]), label="body status"),
                             slot=[{"reference": f"Slot/{slot}"}],
                             participant=[{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"}])
            if "appointment_id" in (case.path_parameters or {}):
                case.body["id"] = str(case.path_parameters["appointment_id"])


@pytest.mark.parametrize("path, method", OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_operation_conforms_to_the_contract(app, seeded, path, method):
    ids, tokens = seeded
    if (path, method) in PATIENT_OPERATIONS:
        tokens = [tokens[2], *tokens[:2], *tokens[3:]]
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", app)
    operation = schema[path][method]
    statuses: dict[int, int] = {}

    # Positive cases are steered towards real rows; negative ones are sent as generated,
    # since replacing a part could turn the invalid request into a valid one.
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE).map(lambda case: (case, True)),
                      operation.as_strategy(GenerationMode.NEGATIVE).map(lambda case: (case, False)))

    @settings(max_examples=2 * EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(generated=cases, data=st.data())
    def exercise(generated, data):
        case, positive = generated
        if positive:
            steer(case, data, ids)
        if data.draw(st.integers(0, 9), label="token choice") < 9:
            case.headers = {**(case.headers or {}),
                            "Authorization": data.draw(st.sampled_from(tokens), label="token")}
        response = case.call()
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS)

    exercise()
    # Past authentication and parsing: some requests got the booking rules' own answer.
    reached = set(statuses) - {400, 401, 413, 415}
    assert reached, f"{method} {path}: no request got past authentication and parsing: {statuses}"
    print(f"{method} {path}: {dict(sorted(statuses.items()))}")


def test_tokens_in_use_are_accepted(client, seeded):
    """The tokens handed to schemathesis really authenticate (else the run proves little)."""
    _, tokens = seeded
    for token in tokens:
        assert client.get("/v1/slots/999999999", headers={"Authorization": token}).status_code == 404



# Schemas whose tables the stateful scenarios may change (Medbook's own tables and
# yoyo's bookkeeping in public are left alone: no API call writes them).
SNAPSHOT_SCHEMAS = ("booking",)


def snapshot(admin) -> str:
    """Copies every booking table aside; returns the SQL that puts them and the sequences back.

    The SQL runs with triggers and foreign-key checks off (session_replication_role =
    replica): the rows were consistent when they were copied, and putting them back must
    write no event or history row of its own.
    """
    admin.execute("CREATE SCHEMA scenario_start")
    tables = admin.execute(
        """SELECT c.oid::regclass::text AS name, format('scenario_start.%%I', c.relname) AS copy,
                  (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                      AND a.attgenerated = '') AS columns
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s)
            ORDER BY 1""", (list(SNAPSHOT_SCHEMAS),)).fetchall()
    script = ["SET LOCAL session_replication_role = replica;"]
    for table in tables:
        admin.execute(f"CREATE TABLE {table['copy']} AS SELECT {table['columns']} FROM {table['name']}")
        script.append(f"DELETE FROM {table['name']};")
        script.append(f"INSERT INTO {table['name']} ({table['columns']}) OVERRIDING SYSTEM VALUE "
                      f"SELECT {table['columns']} FROM {table['copy']};")
    # setval(.., is_called => false) when the sequence was never used: its next value is its start.
    script.extend(row["statement"] for row in admin.execute(
        """SELECT format('SELECT setval(%%L, %%s, %%L);', format('%%I.%%I', schemaname, sequencename),
                         coalesce(last_value, start_value), last_value IS NOT NULL) AS statement
             FROM pg_sequences WHERE schemaname = ANY(%s)""", (list(SNAPSHOT_SCHEMAS),)))
    return "\n".join(script)


def restore(admin, script: str) -> None:
    """Puts the rows and sequences of snapshot() back exactly, in one transaction and one round trip."""
    with admin.transaction():
        admin.execute(script)


@pytest.mark.parametrize("links", ["declared", *(["inferred"] if FUZZ else [])])
def test_stateful_flows_follow_the_links(app, admin, seeded, links):
    """schemathesis's stateful phase: chains calls through the document's links (create slot ->
    read, move, delete, book it; book -> read, cancel), with the caller each operation needs.

    Every scenario starts from the same rows: the state machine's setup puts the seeded
    database back (tables, sequences, the frozen clock), so a scenario's responses depend
    only on its own calls, and Hypothesis can replay and shrink a failing one.

    "declared" follows only the links of api/openapi.json (about 40 transitions); "inferred"
    (make fuzz) adds the ~500 that schemathesis infers from names and schemas, which cover
    more pairs of operations but leave few steps of a scenario for the declared flows.
    """
    from hypothesis.stateful import run_state_machine_as_test
    from schemathesis.checks import ensure_resource_availability, use_after_free

    ids, tokens = seeded
    practitioner, patient = tokens[0], tokens[2]
    start = snapshot(admin)
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", app)
    if links == "declared":
        schema.config.phases.stateful.inference.algorithms = []
    followed: dict[str, int] = {}  # calls on a resource created earlier in the same scenario
    totals = {"scenarios": 0, "slots created": 0}

    class Flows(schema.as_state_machine()):
        def setup(self):
            restore(admin, start)
            totals["scenarios"] += 1
            self.free_times = itertools.count()  # free, future, distinct slot times, the same in every replay
            self.created: dict[str, set] = {"slot_id": set(), "appointment_id": set()}

        def before_call(self, case):
            path, method = case.operation.path, case.method.upper()
            token = patient if (path, method) in PATIENT_OPERATIONS else practitioner
            case.headers = {**(case.headers or {}), "Authorization": token}
            for name in ("practitioner_id", "patient_id"):  # never linked: the callers' own
                if name in (case.path_parameters or {}):
                    case.path_parameters[name] = ids[name][0]
            # The body is replaced, not changed in place: schemathesis hands out the document's
            # example bodies themselves, and a change would carry over into later scenarios.
            if isinstance(case.body, dict) and "start_time" in case.body:
                start_time = NOW + timedelta(days=5, minutes=30 * next(self.free_times))
                case.body = {**case.body, "start_time": start_time.isoformat(),
                             "end_time": (start_time + timedelta(minutes=30)).isoformat()}

        def after_call(self, response, case):
            super().after_call(response, case)  # records the response for use_after_free and co.
            path, method = case.operation.path, case.method.upper()
            used = {**(case.path_parameters or {}), **(case.body if isinstance(case.body, dict) else {})}
            if any(type(used.get(name)) is int and used[name] in self.created[name] for name in self.created):
                key = f"{method} {path} {response.status_code}"
                followed[key] = followed.get(key, 0) + 1
            if response.status_code == 201:
                body = response.json()
                if path.endswith("/slots") or path.endswith("/slots/bulk"):
                    new = [slot["id"] for slot in body.get("data", [body])]
                    self.created["slot_id"].update(new)
                    totals["slots created"] += len(new)
                elif path.startswith("/v1/appointments"):
                    self.created["appointment_id"].add(body["id"])

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            # All of CHECKS but negative_data_rejection: the links and before_call() overwrite
            # values, which can turn a schema-breaking case into a valid one.
            # use_after_free and ensure_resource_availability read the scenario's recorder.
            case.validate_response(response, checks=[*CHECKS[:-1], use_after_free, ensure_resource_availability],
                                   recorder=self.recorder)

    run_state_machine_as_test(Flows, settings=settings(
        max_examples=STATEFUL_EXAMPLES, stateful_step_count=8, deadline=None, database=None,
        derandomize=not FUZZ, suppress_health_check=list(HealthCheck)))
    print(totals, "calls on resources created in the same scenario:", dict(sorted(followed.items())))
    assert totals["slots created"], "no slot was created"
    chained = {key.rsplit(" ", 1)[0] for key in followed}
    assert chained & {"GET /v1/slots/{slot_id}", "PATCH /v1/slots/{slot_id}", "DELETE /v1/slots/{slot_id}"}, followed
