"""Every response an HTTP test receives is checked against api/openapi.json.

conftest's `client` fixture is a ContractClient: a Flask test client that, after
each request, validates the response (status code, headers, content type and
body) against the operation of the OpenAPI document it was sent to. A response
that drifts from the contract fails the test that received it.

Requests that match no documented operation (an unknown path, a method the
path does not have, Flask's automatic HEAD and OPTIONS) must still answer
with a valid problem document when they fail, and may not succeed at all
unless the method is HEAD or OPTIONS.

Under /fhir/ errors are OperationOutcomes (application/fhir+json) that carry
the problem code in issue[0].details.coding, and every response is also
parsed with the fhir.resources R4B models (tests/fhir_contract.py).
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from fhir_contract import check_fhir_response
from flask.testing import FlaskClient
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_core.templating.paths.exceptions import PathError
from openapi_schema_validator import OAS31Validator
from werkzeug.test import TestResponse

from api.docs import openapi_document


class _SentRequest(WerkzeugOpenAPIRequest):
    """The request a response answered. Its body stream was consumed by the app, and
    validating a response needs only the method, path and headers."""

    @property
    def body(self) -> bytes | None:
        return None


class ContractViolationError(AssertionError):
    """A response that the OpenAPI document does not allow."""


@cache
def openapi() -> OpenAPI:
    # RFC 9457 bodies are JSON; openapi-core only knows application/json by name.
    # iCalendar feeds are text, like the text/plain and text/html openapi-core knows.
    config = Config(extra_media_type_deserializers={
        "application/problem+json": json.loads,
        "application/fhir+json": json.loads,
        "text/calendar": lambda data: data.decode("utf-8") if isinstance(data, bytes) else data})
    return OpenAPI.from_dict(openapi_document(), config=config)


@cache
def problem_validator() -> OAS31Validator:
    document = openapi_document()
    schema = {**document["components"]["schemas"]["Problem"], "components": document["components"]}
    return OAS31Validator(schema, format_checker=OAS31Validator.FORMAT_CHECKER)


def _describe(response: TestResponse) -> str:
    request = response.request
    return f"{request.method} {request.full_path.rstrip('?')} -> {response.status}: " \
           f"{response.get_data(as_text=True)[:500]}"


# Statuses an operation need not list: its `default` response (a Problem) covers them.
DEFAULT_STATUSES = {405, 500}


def _documented_response(response: TestResponse) -> dict | None:
    """The operation's response object for this status (refs resolved), or None if it has none."""
    document = openapi_document()
    matches = [template for template in document["paths"]
               if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)), response.request.path)]
    if not matches:
        return None
    path = min(matches, key=lambda template: template.count("{"))  # /v1/docs/ERRORS.md before {document}
    operation = document["paths"][path].get(response.request.method.lower())
    if operation is None:
        return None
    found = operation["responses"].get(str(response.status_code))
    if found is None:
        if response.status_code not in DEFAULT_STATUSES:
            raise ContractViolationError(f"status {response.status_code} is not listed for "
                                         f"{response.request.method} {path}\n{_describe(response)}")
        found = operation["responses"]["default"]
    if "$ref" in found:
        found = document["components"]["responses"][found["$ref"].rsplit("/", 1)[1]]
    return found


def _check_problem_code(response: TestResponse) -> None:
    """A problem's code is one its response documents (by example), not merely any known code.
    Under /fhir/ the problem is an OperationOutcome carrying the code in issue[0].details.coding."""
    documented = _documented_response(response)
    if documented is None or response.status_code < 400 or response.request.method == "HEAD":
        return
    if response.mimetype not in documented["content"]:
        return
    codes = set(documented["content"][response.mimetype].get("examples", {}))
    body = response.get_json(force=True)
    code = body.get("code") if response.mimetype == "application/problem+json" else \
        body["issue"][0]["details"]["coding"][0]["code"]
    if code not in codes:
        raise ContractViolationError(f"problem code {code!r} is not documented for this response "
                                     f"(documented: {sorted(codes)})\n{_describe(response)}")


def check_response(response: TestResponse) -> None:
    """Raises ContractViolationError unless the response is allowed by the OpenAPI document."""
    request = _SentRequest(response.request)
    try:
        openapi().validate_response(request, WerkzeugOpenAPIResponse(response))
        _check_problem_code(response)
        return
    except ContractViolationError:
        raise
    except PathError:
        pass  # no documented operation: checked below
    except Exception as exc:  # every openapi-core validation error
        causes = "; ".join(str(c) for c in _causes(exc))
        raise ContractViolationError(
            f"response breaks api/openapi.json: {exc}; {causes}\n{_describe(response)}") from exc

    method = response.request.method
    if response.status_code < 400:
        if method in ("HEAD", "OPTIONS"):
            return
        raise ContractViolationError(f"{method} {response.request.path} succeeded but is not an operation "
                                f"of api/openapi.json\n{_describe(response)}")
    if response.request.path.startswith("/fhir/"):
        return  # an OperationOutcome: ContractClient checks it with the FHIR models
    if response.mimetype != "application/problem+json":
        raise ContractViolationError(f"error response is not application/problem+json\n{_describe(response)}")
    if method == "HEAD":
        return
    errors = sorted(problem_validator().iter_errors(response.get_json()), key=str)
    if errors:
        raise ContractViolationError(f"problem body breaks the Problem schema: {errors[0].message}\n"
                                f"{_describe(response)}")


def _causes(exc: BaseException) -> list[Any]:
    found = []
    for attr in ("schema_errors", "errors"):
        found.extend(getattr(exc, attr, None) or [])
    cause = exc.__cause__
    while cause is not None:
        found.extend(getattr(cause, "schema_errors", None) or [cause])
        cause = cause.__cause__
    return found


class ContractClient(FlaskClient):
    """A Flask test client whose every response is checked against the OpenAPI document."""

    check_contract = True

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        if self.check_contract:
            check_response(response)
            if response.request.path.startswith("/fhir/"):
                check_fhir_response(response)
        return response
