"""Every response an HTTP test receives is checked against api/openapi.json.

conftest's `client` fixture is a ContractClient: a Flask test client that, after
each request, validates the response (status code, headers, content type and
body) against the operation of the OpenAPI document it was sent to. A response
that drifts from the contract fails the test that received it.

Requests that match no documented operation (an unknown path, a method the
path does not have, Flask's automatic HEAD and OPTIONS) must still answer
with a valid problem document when they fail, and may not succeed at all
unless the method is HEAD or OPTIONS.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

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
    config = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
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


def check_response(response: TestResponse) -> None:
    """Raises ContractViolationError unless the response is allowed by the OpenAPI document."""
    request = _SentRequest(response.request)
    try:
        openapi().validate_response(request, WerkzeugOpenAPIResponse(response))
        return
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
        return response
