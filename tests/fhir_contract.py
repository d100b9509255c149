"""Every response under /fhir/ is checked with the fhir.resources library's R4B models.

openapi_contract.ContractClient calls check_fhir_response() for each response
to a /fhir/ path, after the OpenAPI check: the body must be application/fhir+json
and parse as the R4B model of its resourceType (pydantic: extra elements
forbidden, every required element present, primitives matching their FHIR
syntax; a Bundle's entries are parsed with it). The models do not enforce
value sets, so every code element whose model lists its allowed values
(`enum_values`: Slot.status, Appointment.status, Bundle.type ...) is checked
against them here. An error is always an OperationOutcome.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from fhir.resources.R4B import FHIRAbstractModel

FHIR_JSON = "application/fhir+json"
ERROR_TYPE = "OperationOutcome"


class FhirContractViolationError(AssertionError):
    """A /fhir/ response that is not a valid R4B resource."""


def model(resource_type: str) -> type[FHIRAbstractModel]:
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)


def validate_resource(body: Any) -> FHIRAbstractModel:
    """The body parsed as its R4B resource; raises FhirContractViolationError if it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise FhirContractViolationError(f"not a FHIR resource: {str(body)[:300]}")
    try:
        parsed = model(body["resourceType"]).model_validate(body)
    except (ImportError, AttributeError) as exc:
        raise FhirContractViolationError(f"unknown resourceType {body['resourceType']!r}") from exc
    except Exception as exc:  # pydantic.ValidationError and the library's own checks
        raise FhirContractViolationError(f"invalid R4B {body['resourceType']}: {exc}\n{json.dumps(body)[:800]}") \
            from exc
    wrong = list(_codes_outside_their_value_sets(parsed, body["resourceType"]))
    if wrong:
        raise FhirContractViolationError(f"codes outside their value sets: {wrong}")
    return parsed


def _codes_outside_their_value_sets(element: Any, where: str):
    if isinstance(element, list):
        for item in element:
            yield from _codes_outside_their_value_sets(item, where)
        return
    if not isinstance(element, FHIRAbstractModel):
        return
    for name, field in type(element).model_fields.items():
        value = getattr(element, name, None)
        if value is None:
            continue
        allowed = (field.json_schema_extra or {}).get("enum_values") if isinstance(field.json_schema_extra, dict) \
            else None
        if allowed and isinstance(value, str) and value not in allowed:
            yield f"{where}.{name}={value!r} (allowed: {', '.join(allowed)})"
        yield from _codes_outside_their_value_sets(value, f"{where}.{name}")


def check_fhir_response(response) -> None:
    """A /fhir/ response: fhir+json whose body is a valid R4B resource (an OperationOutcome when it failed)."""
    if response.request.method == "HEAD":
        return
    where = f"{response.request.method} {response.request.full_path.rstrip('?')} -> {response.status}"
    if response.mimetype != FHIR_JSON:
        raise FhirContractViolationError(f"{where}: content type {response.mimetype}, not {FHIR_JSON}")
    body = json.loads(response.get_data())
    validate_resource(body)
    if response.status_code >= 400 and body.get("resourceType") != ERROR_TYPE:
        raise FhirContractViolationError(f"{where}: an error that is not an OperationOutcome")
    if response.status_code < 400 and body.get("resourceType") == ERROR_TYPE:
        raise FhirContractViolationError(f"{where}: an OperationOutcome with a success status")
