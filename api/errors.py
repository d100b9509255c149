"""Problem responses (RFC 9457) and the one mapping from SQLSTATE to HTTP.

Rules are decided in PostgreSQL; an error crosses into HTTP here, once. Every
custom SQLSTATE raised in db/functions/ has a row in SQLSTATES, and
docs/ERRORS.md lists the same rows. Anything unmapped is a 500 that is logged
with its request id and shows no internals.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from flask import Response, current_app, g, json
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException

log = logging.getLogger("medbook.api")

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "2"
# A request with the same idempotency key is still running: it is worth asking again soon.
IN_USE_RETRY_AFTER_SECONDS = "1"

# SQLSTATE -> (HTTP status, code). The registry of the booking rules.
SQLSTATES: dict[str, tuple[int, str]] = {
    "MB400": (400, "validation_error"),
    "MB401": (401, "unauthorized"),
    "MB403": (403, "forbidden"),
    "MB404": (404, "not_found"),
    "MBS01": (409, "slot_unavailable"),
    "MBS02": (409, "slot_overlap"),
    "MBS03": (409, "slot_booked"),
    "MBS04": (422, "slot_in_past"),
    "MBS05": (422, "invalid_time_range"),
    "MBA01": (409, "appointment_not_active"),
    "MBA02": (422, "cancellation_window_closed"),
    "MBV01": (422, "invalid_schedule"),
    "MBC01": (400, "invalid_cursor"),
    "MBA03": (422, "appointment_not_started"),
    "MBA04": (422, "invalid_reschedule"),
    "MBI01": (422, "idempotency_key_reused"),
    "MBI02": (409, "idempotency_key_in_use"),
    "MBP01": (412, "precondition_failed"),
    "MBE01": (400, "unknown_event_type"),
    "MBE02": (400, "invalid_webhook_url"),
    "MBE03": (400, "invalid_webhook_secret"),
    "MBF01": (422, "appointment_mismatch"),
    # Built-in states a client can provoke through the functions.
    "23P01": (409, "slot_overlap"),
    "23505": (409, "conflict"),
}

# Built-in classes: data exceptions are bad input; connection, shutdown,
# lock and statement timeouts mean "try again shortly".
UNAVAILABLE_STATES = {"55P03", "57014", "57P01", "57P02", "57P03", "53300", "40001", "40P01"}

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

HTTP_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
    503: "service_unavailable",
}


REPLAYED_HEADER = "Idempotent-Replayed"


class StoredRefusalError(Exception):
    """A booking rule's refusal (SQLSTATE class MB) returned, not raised, by perform_idempotently()."""

    def __init__(self, sqlstate: str, message: str, hint: str | None, detail: str | None,
                 replayed: bool) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        self.hint = hint
        self.detail = detail
        self.replayed = replayed


class ApiError(Exception):
    """A problem found while parsing a request, before any database call."""

    def __init__(self, status: int, detail: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or HTTP_CODES[status]
        self.extra = extra


def problem(status: int, code: str, detail: str, **extra: Any) -> Response:
    body = {
        "type": f"urn:medbook:problem:{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    g.problem_code = code  # counted by api/observability.py
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    response = current_app.response_class(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="medbook"'
    if status == 503:
        response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    if code == "idempotency_key_in_use":
        response.headers["Retry-After"] = IN_USE_RETRY_AFTER_SECONDS
    return response


def from_rule(state: str, message: str | None, hint: str | None, detail: str | None = None) -> Response | None:
    """The problem response of a booking rule's SQLSTATE, or None when it is not one of the registry's.

    A DETAIL that lists per-item errors (create_slots) becomes the problem's "errors".
    """
    if state not in SQLSTATES:
        return None
    status, code = SQLSTATES[state]
    extra: dict[str, Any] = {"hint": hint} if hint else {}
    items = item_errors(detail)
    if items is not None:
        extra["errors"] = items
    return problem(status, code, message or code, **extra)


def from_database(exc: psycopg.Error) -> Response:
    """Maps a database error to its problem response."""
    state = exc.sqlstate or ""
    diag = exc.diag
    response = from_rule(state, diag.message_primary, diag.message_hint, diag.message_detail)
    if response is not None:
        return response
    if state.startswith("22"):
        return problem(400, "validation_error", diag.message_primary or "invalid value")
    if state in UNAVAILABLE_STATES or state.startswith("08") or isinstance(exc, psycopg.OperationalError):
        log.warning("database unavailable: sqlstate=%s request_id=%s", state, g.get("request_id"))
        return problem(503, "service_unavailable", "The booking database is unavailable; try again shortly.")
    log.error("unmapped database error: sqlstate=%s request_id=%s", state, g.get("request_id"), exc_info=exc)
    return problem(500, "internal_error", "Something went wrong on our side.")


def item_errors(detail: str | None) -> list[dict[str, Any]] | None:
    """The per-item errors a function that takes a list (create_slots) puts in DETAIL, with codes.

    DETAIL is then a JSON array of {"index", "sqlstate", "detail"}; any other
    DETAIL (ids for the log) gives None and stays out of the response.
    """
    if not detail or not detail.startswith("[{"):
        return None
    try:
        items = json.loads(detail)
    except ValueError:
        return None
    if not isinstance(items, list) or not all(
            isinstance(item, dict) and set(item) == {"index", "sqlstate", "detail"}
            and item["sqlstate"] in SQLSTATES for item in items):
        return None
    return [{"index": item["index"], "code": SQLSTATES[item["sqlstate"]][1], "detail": item["detail"]}
            for item in items]


def register(app) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return problem(exc.status, exc.code, exc.detail, **exc.extra)

    @app.errorhandler(psycopg.Error)
    def _database_error(exc: psycopg.Error):
        return from_database(exc)

    @app.errorhandler(StoredRefusalError)
    def _stored_refusal(exc: StoredRefusalError):
        """A booking rule's refusal that perform_idempotently() stored (and may be replaying)."""
        response = from_rule(exc.sqlstate, exc.message, exc.hint, exc.detail)
        if response is None:
            log.error("stored refusal with an unmapped sqlstate=%s request_id=%s", exc.sqlstate,
                      g.get("request_id"))
            return problem(500, "internal_error", "Something went wrong on our side.")
        if exc.replayed:
            response.headers[REPLAYED_HEADER] = "true"
        return response

    @app.errorhandler(PoolTimeout)
    def _pool_timeout(exc: PoolTimeout):
        log.warning("no database connection available: request_id=%s", g.get("request_id"))
        return problem(503, "service_unavailable", "The booking database is unavailable; try again shortly.")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        code = HTTP_CODES.get(status, "error")
        detail = {
            404: "No such resource.",
            405: "This method is not allowed on this resource.",
            413: "The request body is too large.",
        }.get(status, exc.description or "")
        response = problem(status, code, detail)
        if getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.error("unexpected error: request_id=%s", g.get("request_id"), exc_info=exc)
        return problem(500, "internal_error", "Something went wrong on our side.")
