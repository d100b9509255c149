"""The OpenAPI document is the HTTP contract: it is valid, served, complete, and enforced.

- api/openapi.json is a valid OpenAPI 3.1 document, served at /v1/openapi.json;
- every route the app serves is an operation of the document, and every
  operation of the document is served (no drift either way);
- every problem `code` the API can produce is in the document's enum;
- the `client` fixture really rejects a response that drifts from the contract.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from conftest import JWT_SECRET, NOW, ROOT, bearer, iso
from openapi_contract import ContractClient, ContractViolationError, check_response
from openapi_spec_validator import validate

from api import create_app, errors
from api.docs import ASSETS, openapi_document

AUTOMATIC_METHODS = {"HEAD", "OPTIONS"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def documented_operations() -> set[tuple[str, str]]:
    return {(method.upper(), path)
            for path, item in openapi_document()["paths"].items()
            for method in item if method in HTTP_METHODS}


def served_operations(app) -> set[tuple[str, str]]:
    """(METHOD, path) of every Flask route, with <converter:name> written as {name}."""
    served = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - AUTOMATIC_METHODS:
            served.add((method, path))
    return served


def test_document_is_valid_openapi_31():
    document = json.loads((ROOT / "api" / "openapi.json").read_text())
    validate(document)
    assert document["openapi"].startswith("3.1.")


def test_every_route_is_documented_and_every_operation_served(db, admin):
    app = create_app({"DATABASE_URL": db, "JWT_SECRET": JWT_SECRET, "METRICS": "on"})  # every optional route
    try:
        served, documented = served_operations(app), documented_operations()
    finally:
        app.extensions["medbook_db"].close()
    undocumented = sorted(served - documented)
    unserved = sorted(documented - served)
    assert not undocumented, f"routes missing from api/openapi.json: {undocumented}"
    assert not unserved, f"operations in api/openapi.json that the app does not serve: {unserved}"


def test_every_operation_declares_its_error_statuses():
    """Authenticated operations declare 401 and 503; those taking ids declare 400 and 404."""
    document = openapi_document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            statuses = set(operation["responses"])
            assert "operationId" in operation and operation.get("summary"), (method, path)
            if operation.get("security", document["security"]):
                assert {"401", "503"} <= statuses, (method, path)
            if "{" in path:
                assert "404" in statuses, (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= statuses, (method, path)


def test_problem_code_enum_is_exactly_the_codes_the_api_produces():
    enum = set(openapi_document()["components"]["schemas"]["ProblemCode"]["enum"])
    produced = {code for _, code in errors.SQLSTATES.values()} | set(errors.HTTP_CODES.values())
    assert enum == produced, f"only in api/openapi.json: {sorted(enum - produced)}; " \
                             f"only in api/errors.py: {sorted(produced - enum)}"
    registry = (ROOT / "docs" / "ERRORS.md").read_text()
    missing = sorted(code for code in enum if f"| {code} |" not in registry)
    assert not missing, f"codes missing from docs/ERRORS.md: {missing}"


def test_document_is_served_without_authentication(client):
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == openapi_document()


def test_docs_page_and_its_assets_are_served_locally(client):
    page = client.get("/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(src.startswith("/v1/docs/assets/") for src in sources), sources
    assert "http://" not in html and "https://" not in html
    for src in sources:
        asset = client.get(src)
        assert asset.status_code == 200, src
        assert asset.get_data(), src
    assert {src.rsplit("/", 1)[1] for src in sources} <= ASSETS


def test_unknown_docs_asset_is_a_problem(client):
    assert client.get("/v1/docs/assets/index.html").status_code == 404
    assert client.get("/v1/docs/assets/..%2Fdocs.py").status_code == 404


@pytest.fixture
def raw_client(app):
    """A test client that does not check, to hand-craft responses for the checker."""
    client = app.test_client()
    assert isinstance(client, ContractClient)
    client.check_contract = False
    return client


def test_contract_check_accepts_real_responses(raw_client, world):
    headers = bearer(world.practitioner_user)
    body = {"start_time": iso(NOW + timedelta(days=1)), "end_time": iso(NOW + timedelta(days=1, minutes=30))}
    created = raw_client.post(f"/v1/practitioners/{world.practitioner}/slots", json=body, headers=headers)
    assert created.status_code == 201
    check_response(created)
    check_response(raw_client.get(f"/v1/slots/{created.get_json()['id']}", headers=headers))
    check_response(raw_client.get("/v1/slots/1"))  # 401
    check_response(raw_client.put("/v1/slots/1"))  # 405, not an operation


@pytest.mark.parametrize("change, why", [
    (lambda slot: {**slot, "starts": slot.pop("start_time")}, "renamed field"),
    (lambda slot: {**slot, "colour": "blue"}, "extra field"),
    (lambda slot: {**slot, "status": "open"}, "value outside the enum"),
    (lambda slot: {**slot, "id": str(slot["id"])}, "wrong type"),
    (lambda slot: {**slot, "end_time": "tomorrow"}, "not a date-time"),
])
def test_contract_check_rejects_a_drifted_body(client, world, monkeypatch, change, why):
    from api import resources
    original = resources.slot
    monkeypatch.setattr(resources, "slot", lambda row: change(original(row)))
    body = {"start_time": iso(NOW + timedelta(days=1)), "end_time": iso(NOW + timedelta(days=1, minutes=30))}
    with pytest.raises(ContractViolationError, match=r"breaks api/openapi\.json"):
        client.post(f"/v1/practitioners/{world.practitioner}/slots", json=body,
                    headers=bearer(world.practitioner_user))


def test_contract_check_rejects_an_undocumented_status_or_header(app, raw_client, world):
    headers = bearer(world.practitioner_user)
    body = {"start_time": iso(NOW + timedelta(days=1)), "end_time": iso(NOW + timedelta(days=1, minutes=30))}
    created = raw_client.post(f"/v1/practitioners/{world.practitioner}/slots", json=body, headers=headers)
    del created.headers["Location"]
    with pytest.raises(ContractViolationError):
        check_response(created)

    got = raw_client.get(f"/v1/slots/{created.get_json()['id']}", headers=headers)
    got.status_code = 202
    with pytest.raises(ContractViolationError):
        check_response(got)

    problem = raw_client.get("/v1/slots/999999", headers=headers)
    assert problem.status_code == 404
    problem.set_data(json.dumps({**problem.get_json(), "code": "slot_gone"}))
    with pytest.raises(ContractViolationError):
        check_response(problem)


def test_contract_check_rejects_an_undocumented_success(app, raw_client):
    @app.get("/v1/secret")
    def secret():
        return {"ok": True}

    response = raw_client.get("/v1/secret")
    assert response.status_code == 200
    with pytest.raises(ContractViolationError, match="not an operation"):
        check_response(response)



def _examples(document: dict):
    """(where, schema, example value) for every example in the document."""
    components = document["components"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            bodies = [("request", operation.get("requestBody", {}))]
            bodies += [(f"response {status}", response) for status, response in operation["responses"].items()]
            for label, body in bodies:
                if "$ref" in body:
                    body = components["responses"][body["$ref"].rsplit("/", 1)[1]]
                for media, content in body.get("content", {}).items():
                    where = f"{method.upper()} {path} {label} {media}"
                    if "example" in content:
                        yield where, content["schema"], content["example"]
                    for name, example in content.get("examples", {}).items():
                        if "$ref" in example:
                            example = components["examples"][example["$ref"].rsplit("/", 1)[1]]
                        yield f"{where} ({name})", content["schema"], example["value"]
            for parameter in operation.get("parameters", []) + item.get("parameters", []):
                if "example" in parameter:
                    yield f"{method.upper()} {path} parameter {parameter['name']}", parameter["schema"], \
                        parameter["example"]


def test_every_example_in_the_document_is_valid():
    from openapi_schema_validator import OAS31Validator

    document = openapi_document()
    examples = list(_examples(document))
    assert len(examples) > 20
    problems = []
    for where, schema, value in examples:
        validator = OAS31Validator({**schema, "components": document["components"]},
                                   format_checker=OAS31Validator.FORMAT_CHECKER)
        problems += [f"{where}: {error.message}" for error in validator.iter_errors(value)]
    assert not problems, "\n".join(problems)


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def test_every_error_is_the_one_shared_problem_type():
    """Client generators make one Problem class: no response inlines its own variant of it.
    Under /fhir/ the one error type is FHIR's OperationOutcome (carrying the problem code)."""
    document = openapi_document()
    responses = document["components"]["responses"]
    for path, method, operation in _operations(document):
        fhir = path.startswith("/fhir/")
        default, media, schema = (("FhirOutcome", "application/fhir+json", "OperationOutcome") if fhir
                                  else ("Problem", "application/problem+json", "Problem"))
        assert operation["responses"].get("default") == {"$ref": f"#/components/responses/{default}"}, \
            f"{method.upper()} {path} has no default problem response"
        for status, response in operation["responses"].items():
            if "$ref" in response:
                response = responses[response["$ref"].rsplit("/", 1)[1]]
            problem = response.get("content", {}).get(media)
            if status == "default" or status.startswith(("4", "5")):
                assert problem, f"{method.upper()} {path} {status} is not a problem"
                assert problem["schema"] == {"$ref": f"#/components/schemas/{schema}"}, \
                    f"{method.upper()} {path} {status} inlines its problem schema"
                assert problem.get("examples"), f"{method.upper()} {path} {status} names no problem code"


def test_links_chain_operations_that_exist():
    document = openapi_document()
    by_id = {operation["operationId"]: {**operation, "parameters": [
                 *operation.get("parameters", []), *document["paths"][path].get("parameters", [])]}
             for path, _, operation in _operations(document)}
    linked = set()
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            for name, link in response.get("links", {}).items():
                target = by_id.get(link["operationId"])
                assert target is not None, f"{method.upper()} {path} {status} link {name}"
                names = {p["name"] for p in target.get("parameters", [])}
                assert set(link.get("parameters", {})) <= names, f"{name}: {link}"
                linked.add((operation["operationId"], link["operationId"]))
    assert {("create_slot", "get_slot"), ("create_slot", "update_slot"), ("create_slot", "delete_slot"),
            ("book_slot", "get_appointment"), ("book_slot", "cancel_appointment")} <= linked


def test_checker_refuses_a_problem_code_the_response_does_not_document(client, admin, world):
    """409 on booking documents slot_unavailable only: a slot_overlap there is a contract break."""
    slot = admin.execute("SELECT id FROM create_slot(%s, %s, %s, %s)",
                         (world.practitioner_user, world.practitioner, NOW + timedelta(days=1),
                          NOW + timedelta(days=1, minutes=30))).fetchone()
    client.check_contract = False
    client.post("/v1/appointments", json={"slot_id": slot["id"]}, headers=bearer(world.patient_user))
    response = client.post("/v1/appointments", json={"slot_id": slot["id"]}, headers=bearer(world.other_patient_user))
    assert response.status_code == 409
    check_response(response)  # slot_unavailable: documented
    body = response.get_json()
    response.set_data(json.dumps({**body, "code": "slot_overlap"}))
    with pytest.raises(ContractViolationError, match="not documented for this response"):
        check_response(response)
