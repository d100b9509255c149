"""The FHIR wire format: media types, request bodies, references, instants, responses and
OperationOutcomes.

Errors cross once, as in the REST API: every failure under /fhir/ is first the
REST problem it would be (same HTTP status, same problem code, from the same
SQLSTATE table in api/errors.py), and is then written as an OperationOutcome
whose issue code is looked up in ISSUE_CODES. FhirError is an ApiError that
also says which FHIR issue code fits better than the table's (a missing
element is `required`, an element this server does not store is
`business-rule`).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, current_app, g, request

from ..errors import PROBLEM_JSON, ApiError

FHIR_JSON = "application/fhir+json"
JSON_PATCH = "application/json-patch+json"
BASE_PATH = "/fhir/R4"
PROBLEM_SYSTEM = "urn:medbook:problem"

# REST problem code -> OperationOutcome issue code (http://hl7.org/fhir/issue-type).
ISSUE_CODES: dict[str, str] = {
    "validation_error": "invalid",
    "invalid_cursor": "invalid",
    "unauthorized": "login",
    "forbidden": "forbidden",
    "not_found": "not-found",
    "method_not_allowed": "not-supported",
    "payload_too_large": "too-long",
    "unsupported_media_type": "not-supported",
    "slot_unavailable": "conflict",
    "slot_overlap": "conflict",
    "conflict": "conflict",
    "slot_booked": "business-rule",
    "slot_in_past": "business-rule",
    "invalid_time_range": "business-rule",
    "appointment_not_active": "business-rule",
    "cancellation_window_closed": "business-rule",
    "appointment_mismatch": "business-rule",
    # If-Match named a version that is no longer current: FHIR's "edit conflict (version aware updates)".
    "precondition_failed": "conflict",
    # Idempotency-Key: the key names another request (a rule), or its request is still running (ask again).
    "idempotency_key_reused": "business-rule",
    "idempotency_key_in_use": "transient",
    "service_unavailable": "transient",
    "internal_error": "exception",
}
DEFAULT_ISSUE_CODE = "processing"

_ID = re.compile(r"[0-9]{1,19}")
BIGINT_MAX = 2**63 - 1


class FhirError(ApiError):
    """A request the facade refuses before any database call, with its FHIR issue code."""

    def __init__(self, status: int, detail: str, issue: str, code: str | None = None) -> None:
        super().__init__(status, detail, code)
        self.issue = issue


def invalid(detail: str, issue: str = "invalid") -> FhirError:
    return FhirError(400, detail, issue)


def not_stored(detail: str) -> FhirError:
    """422 business-rule: the resource says something this server cannot book or keep."""
    return FhirError(422, detail, "business-rule", "appointment_mismatch")


def respond(resource: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = current_app.response_class(current_app.json.dumps(resource), status=status, mimetype=FHIR_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def base_url() -> str:
    """The absolute base of this FHIR endpoint, e.g. http://host/fhir/R4/."""
    return f"{request.url_root.rstrip('/')}{BASE_PATH}/"


def instant(value: datetime | str | None) -> str | None:
    """A FHIR instant in UTC (2027-03-02T09:00:00Z); a row replayed from JSON carries its times as strings."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def etag(version: int) -> str:
    """The ETag of a resource's version, weak as FHIR writes it: W/"3" (meta.versionId "3")."""
    return f'W/"{version}"'


def reference(resource_type: str, resource_id: int | None) -> dict[str, str] | None:
    return None if resource_id is None else {"reference": f"{resource_type}/{resource_id}"}


def logical_id(value: str, name: str) -> int:
    """A resource id from the path: our ids are positive bigints."""
    if not _ID.fullmatch(value) or not 1 <= int(value) <= BIGINT_MAX:
        raise FhirError(404, f"No {name} has id {value[:40]!r}.", "not-found")
    return int(value)


def parse_reference(value: Any, allowed: tuple[str, ...], where: str,
                    also_valid: tuple[str, ...] = ()) -> tuple[str, int]:
    """(type, id) of a literal reference 'Type/id' (or this server's absolute URL of one). A type FHIR
    allows there but this server does not keep (also_valid) is a 422; any other type is a 400."""
    if not isinstance(value, str):
        raise invalid(f"{where} must be a reference such as {allowed[0]}/1")
    text = value
    if "://" in text:
        if not text.startswith(base_url()):
            raise not_stored(f"{where} refers to another server: {text[:100]}")
        text = text[len(base_url()):]
    kind, _, rid = text.partition("/")
    if kind in also_valid:
        raise not_stored(f"{where}: this server keeps references to {' or '.join(allowed)} only, not {kind}")
    if kind not in allowed:
        raise invalid(f"{where} must refer to {' or '.join(allowed)}, e.g. {allowed[0]}/1")
    if not _ID.fullmatch(rid) or not 1 <= int(rid) <= BIGINT_MAX:
        raise invalid(f"{where} must be {kind}/<id> with a positive integer id")
    return kind, int(rid)


# FHIR dateTime/instant as this server accepts it: a full date, or a date and a
# time to the second (fraction optional) with a mandatory offset. In a query
# string an unencoded '+' arrives as a space; it is read as '+'.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_TIME = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})T(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})(?P<fraction>\.[0-9]{1,6})?"
    r"(?P<offset>Z|[+ -][0-9]{2}:[0-9]{2})")


def parse_time(value: Any, where: str, *, allow_date: bool = False) -> tuple[datetime, timedelta]:
    """(start, precision) of a FHIR date-time: the value is the interval [start, start + precision)."""
    if isinstance(value, str) and allow_date and _DATE.fullmatch(value):
        try:
            day = datetime.fromisoformat(value).replace(tzinfo=UTC)
        except ValueError:
            raise invalid(f"{where} is not a valid date") from None
        return day, timedelta(days=1)
    match = _DATE_TIME.fullmatch(value) if isinstance(value, str) else None
    if not match:
        forms = "YYYY-MM-DD or " if allow_date else ""
        raise invalid(f"{where} must be {forms}an instant with seconds and an offset, e.g. 2027-03-01T09:00:00Z")
    offset = "+00:00" if match["offset"] == "Z" else match["offset"].replace(" ", "+")
    fraction = match["fraction"] or ""
    try:
        start = datetime.fromisoformat(f"{match['date']}T{match['time']}{fraction}{offset}")
    except ValueError:
        raise invalid(f"{where} is not a valid date-time") from None
    return start, timedelta(seconds=1) / 10 ** (len(fraction) - 1 if fraction else 0)


def read_json(media_types: tuple[str, ...] = (FHIR_JSON, "application/json")) -> Any:
    """The request body as JSON of one of the media types (415 for any other)."""
    if request.mimetype not in media_types:
        raise ApiError(415, f"The request body must be {' or '.join(media_types)}.")
    try:
        return json.loads(request.get_data(cache=True))
    except (ValueError, RecursionError):
        raise invalid("The request body is not valid JSON.", "structure") from None


def read_resource(resource_type: str) -> dict[str, Any]:
    """The request body: a FHIR JSON resource of this type."""
    body = read_json()
    if not isinstance(body, dict):
        raise invalid("The request body must be a FHIR resource (a JSON object).", "structure")
    if body.get("resourceType") != resource_type:
        raise invalid(f"The request body must be a {resource_type} resource (resourceType {resource_type!r}).")
    return body


def text(value: Any, where: str, max_length: int) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise invalid(f"{where} must be a string without NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(f"{where} must be valid Unicode text") from None
    if len(value) > max_length:
        raise invalid(f"{where} must be at most {max_length} characters")
    return value


def operation_outcome(response: Response) -> Response:
    """Rewrites a problem response (api/errors.py) as an OperationOutcome, keeping status and headers."""
    if response.mimetype != PROBLEM_JSON:
        return response
    raw = response.get_data()
    response.mimetype = FHIR_JSON
    if not raw:  # HEAD
        return response
    problem = json.loads(raw)
    code = problem.get("code", "")
    diagnostics = problem.get("detail") or code
    if problem.get("hint"):
        diagnostics = f"{diagnostics} {problem['hint']}"
    issue = {
        "severity": "error",
        "code": g.get("fhir_issue") or ISSUE_CODES.get(code, DEFAULT_ISSUE_CODE),
        "details": {"coding": [{"system": PROBLEM_SYSTEM, "code": code}], "text": problem.get("title", "")},
        "diagnostics": diagnostics,
    }
    outcome: dict[str, Any] = {"resourceType": "OperationOutcome"}
    if problem.get("request_id"):
        outcome["id"] = problem["request_id"]
    outcome["issue"] = [issue]
    response.set_data(current_app.json.dumps(outcome))
    return response
